"""Scenarios 5 and 6: the deadline storm, and memory with N open registrations.

Every unpaid registration of an edition waits on one timer, the payment deadline, and they all fire at
the same midnight. This starts the embedded stack with its payment deadline a few minutes ahead (the
rehearsal setting ``EXPO_REHEARSAL_PAYMENT_DEADLINE``, shared/settings.py: production never sets it),
registers N people in units of ``--per-unit`` over the real HTTP APIs, approves the units in bulk (so
each person receives the payment notice and is ``unpaid``), and waits. From the deadline on it measures
how long until every registration has expired (the workflow's ``payment_expired`` step in the
timeline) and its buyer has been told (every channel of the expiry message ``sent`` in the
notification service's message log): the first and the last, the percentiles, and expiries per second.

Memory (resident, per process: every API, every worker, Temporal's dev server) is sampled before the
registrations, with N registrations open and waiting on their deadline, and after the storm.

    ./expo bench storm [--registrations 1000] [--per-unit 20] [--lead auto]
                       [--workflow-workers 1] [--activity-workers 1] [--report-dir var/bench]

``--lead`` is the time from the start of the stack to the deadline: the stack must be up and every
registration unpaid before it, so it grows with N (auto: a conservative rate for this stack on two
cores); a run whose registrations were not all unpaid in time stops and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from bench.driver import Driver, Unit, bounded
from bench.harness import REPORTS, Report, Stopwatch, bench_stack, percentile, stack_memory
from deploy.local.stack import Stack
from shared.types import RegistrationStatus

S = RegistrationStatus
EXPIRED_STEP = "payment_expired"
NOTICE_STEP = "unit_approved"  # the payment notice: tells how many channels each person is told by
# Units per bulk decision (the review service takes up to 200): small, so that no answer takes minutes
# while the workflow worker is busy with the members of the units approved before.
BULK = 10
SDK_CACHE = 1000  # temporalio Worker max_cached_workflows default; workflows/worker.py sets none


def auto_lead(registrations: int) -> float:
    """Seconds from starting the stack to the deadline: the stack's start, then registering and
    approving at a rate this stack keeps on a shared two-core machine, with room to spare."""
    return 90 + registrations * 0.45


def seconds_after(instant: datetime, deadline: datetime) -> float:
    if instant.tzinfo is None:  # the APIs answer aware times; a naive one is UTC
        instant = instant.replace(tzinfo=UTC)
    return (instant - deadline).total_seconds()


def spread(seconds: list[float], prefix: str) -> dict[str, float]:
    """First, p50, p95, p99 and last, in seconds after the deadline."""
    return {
        f"{prefix}_first_s": round(min(seconds, default=0.0), 2),
        f"{prefix}_p50_s": round(percentile(seconds, 0.50), 2),
        f"{prefix}_p95_s": round(percentile(seconds, 0.95), 2),
        f"{prefix}_p99_s": round(percentile(seconds, 0.99), 2),
        f"{prefix}_last_s": round(max(seconds, default=0.0), 2),
    }


class Storm:
    """One run: the driver, the stack's notification log, and what was measured."""

    def __init__(self, stack: Stack, deadline: datetime, args: argparse.Namespace) -> None:
        self.stack = stack
        self.deadline = deadline
        self.args = args
        self.driver = Driver(stack.settings, connections=max(64, args.clients), timeout=600)
        self.units: list[Unit] = []
        self.figures: dict[str, Any] = {}
        self.memory: dict[str, dict[str, float]] = {}

    @property
    def registration_ids(self) -> list[str]:
        return [rid for unit in self.units for rid in unit.registration_ids]

    async def message_count(self, step: str, status: str | None = None) -> int:
        """How many messages of ``step`` the log holds (its X-Total-Count), one cheap call."""
        params: dict[str, str | int] = {"step": step, "limit": 1}
        if status:
            params["status"] = status
        response = await self.driver.http.get(
            f"{self.stack.settings.notification_url}/v1/messages", headers=self.driver.staff, params=params
        )
        response.raise_for_status()
        return int(response.headers["X-Total-Count"])

    async def messages(self, step: str) -> list[dict[str, Any]]:
        """Every message of ``step`` in the log, page by page."""
        found: list[dict[str, Any]] = []
        while True:
            page = await self.driver.call(
                "GET",
                f"{self.stack.settings.notification_url}/v1/messages",
                self.driver.staff,
                params={"step": step, "limit": 500, "offset": len(found)},
            )
            found += page
            if len(page) < 500:
                return found

    # ------------------------------------------------------------------ before the deadline

    async def open_registrations(self) -> None:
        """N people, unpaid: in two batches (a tenth of the units, then the rest) so that memory is
        sampled between them, after the processes' first-request warm-up: the growth per open
        registration is the second batch's."""
        args = self.args
        await self.driver.staff_login()
        clock = Stopwatch()
        sizes = [
            min(args.per_unit, args.registrations - start)
            for start in range(0, args.registrations, args.per_unit)
        ]
        first = max(1, len(sizes) // 10) if len(sizes) > 1 else 0
        timings = {"registered_s": 0.0, "units_approved_s": 0.0}
        for batch in (sizes[:first], sizes[first:]):
            if not batch:
                continue
            units = await self.open_batch(batch, clock, timings)
            self.units += units
            self.memory["warm"] = self.memory.get("warm") or stack_memory(self.stack)
            self.figures["warm_open"] = self.figures.get("warm_open") or sum(batch)
        unpaid = clock.elapsed
        self.figures |= {
            "units": len(sizes),
            **{name: round(value, 1) for name, value in timings.items()},
            "all_unpaid_s": round(unpaid, 1),
            "opened_per_s": round(args.registrations / unpaid, 1),
        }

    async def open_batch(self, sizes: list[int], clock: Stopwatch, timings: dict[str, float]) -> list[Unit]:
        """Units of ``sizes`` people, registered (no photo: it plays no part before payment), approved
        in bulk, and every person ``unpaid``; ``timings`` add up the seconds of each part."""
        args, driver = self.args, self.driver
        began = clock.elapsed

        async def unit() -> Unit:
            made = await driver.sign_up()
            await driver.register_unit(made)
            return made

        units = list(await bounded(args.clients, (unit() for _ in sizes)))
        await bounded(
            args.clients,
            (driver.register_person(u, photo=False) for u, size in zip(units, sizes, strict=True)
             for _ in range(size)),
        )  # fmt: skip
        timings["registered_s"] += clock.elapsed - began
        began = clock.elapsed
        await self.units_queued({u.unit_id for u in units})
        for start in range(0, len(units), BULK):
            answer = await driver.call(
                "POST",
                f"{self.stack.settings.review_url}/v1/decisions",
                driver.staff,
                json={
                    "kind": "unit",
                    "items": [
                        {"subject_id": u.unit_id, "decision": "approve"} for u in units[start : start + BULK]
                    ],
                },
            )
            if answer["refused"]:
                raise RuntimeError(f"unit approvals refused: {answer['results'][:3]}")
        left = (self.deadline - datetime.now(UTC)).total_seconds()
        try:
            await driver.wait_all(units, {S.UNPAID}, timeout=max(left - 2, 1), every=2.0)
        except TimeoutError as late:
            raise SystemExit(
                f"not every registration was unpaid before the deadline ({late}); "
                f"registering took {clock.elapsed:.0f}s: run again with a longer --lead"
            ) from None
        timings["units_approved_s"] += clock.elapsed - began
        left = (self.deadline - datetime.now(UTC)).total_seconds()
        print(
            f"   {sum(sizes)} more unpaid after {clock.elapsed:.0f}s; the deadline in {left:.0f}s", flush=True
        )
        return units

    async def units_queued(self, wanted: set[str]) -> None:
        """Until each unit workflow has opened its review task (a decision needs it)."""
        for _ in range(600):
            if wanted <= await self.driver.queued("unit"):
                return
            await asyncio.sleep(0.5)
        raise SystemExit("the units did not all reach the review queue")

    # ------------------------------------------------------------------ the storm

    async def storm(self) -> None:
        """From the deadline: poll the log until every expiry message is sent, then read when each
        registration expired (its timeline) and when its buyer was told (the log)."""
        n = self.args.registrations
        notices = await self.message_count(NOTICE_STEP)
        channels = max(1, round(notices / n))  # SMS and email for mainland mobiles (FAQ IX)
        expected = n * channels
        wait = (self.deadline - datetime.now(UTC)).total_seconds()
        self.figures["idle_before_deadline_s"] = round(wait, 1)
        # Open and waiting: a few seconds before the timers fire, the memory they hold.
        await asyncio.sleep(max(0.0, wait - 3))
        self.memory["open"] = stack_memory(self.stack)
        await asyncio.sleep(max(0.0, (self.deadline - datetime.now(UTC)).total_seconds()))
        limit = time.monotonic() + self.args.timeout
        sent = 0
        while sent < expected:
            if time.monotonic() > limit:
                raise SystemExit(
                    f"after {self.args.timeout:.0f}s only {sent}/{expected} expiry messages sent"
                )
            await asyncio.sleep(0.5)
            sent = await self.message_count(EXPIRED_STEP, "sent")
        observed = seconds_after(datetime.now(UTC), self.deadline)
        statuses = await bounded(16, (self.driver.statuses(u) for u in self.units))
        not_expired = sum(s is not S.EXPIRED for found in statuses for s in found.values())
        await asyncio.sleep(2)
        self.memory["after"] = stack_memory(self.stack)

        told: dict[str, float] = {}
        for message in await self.messages(EXPIRED_STEP):
            at = seconds_after(datetime.fromisoformat(message["sent_at"]), self.deadline)
            told[message["registration_id"]] = max(told.get(message["registration_id"], at), at)

        async def expired_at(unit: Unit, rid: str) -> float:
            line = await self.driver.call(
                "GET", f"{self.stack.settings.registration_url}/v1/registrations/{rid}/timeline", unit.headers
            )
            step = next(s for s in line["steps"] if s["step"] == EXPIRED_STEP)
            return seconds_after(datetime.fromisoformat(step["at"]), self.deadline)

        expired = await bounded(16, (expired_at(u, rid) for u in self.units for rid in u.registration_ids))
        last_expiry = max(expired, default=0.0)
        last_told = max(told.values(), default=0.0)
        self.figures |= {
            "channels_per_person": channels,
            "not_expired_after_storm": not_expired,
            **spread(expired, "expired"),
            **spread(list(told.values()), "told"),
            "storm_s": round(last_told, 2),
            "storm_observed_s": round(observed, 2),
            "expiries_per_s": round(n / last_expiry, 1) if last_expiry > 0 else 0.0,
            "told_per_s": round(n / last_told, 1) if last_told > 0 else 0.0,
        }

    async def run(self) -> None:
        try:
            self.memory["before"] = stack_memory(self.stack)
            await self.open_registrations()
            await self.storm()
        finally:
            await self.driver.close()


def memory_rows(memory: dict[str, dict[str, float]], warm: int, opened: int) -> list[dict[str, Any]]:
    """Per process: resident MiB before, with ``warm`` and with ``opened`` registrations open, after
    the storm, and the growth per 1,000 open registrations between the last two samples."""
    columns = {"before": "before_mib", "warm": f"open_{warm}_mib", "open": f"open_{opened}_mib"}
    columns["after"] = "after_mib"
    rows: list[dict[str, Any]] = []
    for name in memory["before"]:
        row: dict[str, Any] = {"process": name}
        row |= {column: memory.get(sample, {}).get(name, 0.0) for sample, column in columns.items()}
        rows.append(row)
    rows.append(
        {"process": "total"}
        | {column: round(sum(float(r[column]) for r in rows), 1) for column in columns.values()}
    )
    for row in rows:
        grown = float(row[columns["open"]]) - float(row[columns["warm"]])
        row["per_1000_open_mib"] = round(grown / max(1, opened - warm) * 1000, 1)
    return rows


def growth(rows: list[dict[str, Any]], kind: str) -> float:
    """MiB per 1,000 open registrations, summed over the processes of one kind."""

    def of_kind(name: str) -> bool:
        program = re.sub(r"-\d+$", "", name)  # copies of a worker: workflow-worker-2
        if kind == "services":
            return program.endswith(("-api", "-worker")) and program != "workflow-worker"
        return program == kind

    return round(sum(float(r["per_1000_open_mib"]) for r in rows if of_kind(r["process"])), 1)


@contextmanager
def fresh_database(server_url: str | None) -> Iterator[str | None]:
    """A new, empty database on the PostgreSQL server (the message log must hold this run's messages
    only), dropped at the end; None (SQLite files in the stack's directory) without a server."""
    if server_url is None:
        yield None
        return
    name = f"expo_storm_{secrets.token_hex(4)}"
    server = make_url(server_url)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registrations", type=int, default=1000, help="unpaid registrations (N)")
    parser.add_argument("--per-unit", type=int, default=20, help="people per unit")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients while registering")
    parser.add_argument(
        "--lead", type=float, default=None, help="seconds from the stack's start to the deadline (auto)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds after the deadline to give up")
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        default=None,
        help="run the services on a fresh database of this PostgreSQL server, dropped at the end, e.g."
        " postgresql://postgres@127.0.0.1:5432/postgres (default: a SQLite file per service)",
    )
    parser.add_argument("--workflow-workers", type=int, default=1)
    parser.add_argument("--activity-workers", type=int, default=1)
    parser.add_argument("--report-dir", type=Path, default=REPORTS, help="where storm.json is written")
    args = parser.parse_args()

    lead = args.lead if args.lead is not None else auto_lead(args.registrations)
    deadline = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
    env = {"EXPO_REHEARSAL_PAYMENT_DEADLINE": deadline.isoformat()}
    print(
        f"deadline storm: {args.registrations} registrations, deadline {deadline:%H:%M:%S} UTC (+{lead:.0f}s)"
    )
    with (
        fresh_database(args.postgres) as database_url,
        bench_stack(
            workflow_workers=args.workflow_workers,
            activity_workers=args.activity_workers,
            database_url=database_url,
            extra_env=env,
        ) as stack,
    ):
        storm = Storm(stack, deadline, args)
        try:
            asyncio.run(storm.run())
        except BaseException:
            kept = args.report_dir / "storm-logs"  # the stack's directory goes: its logs stay for a look
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(stack.logs, kept)
            print(f"   the stack's logs: {kept}")
            raise

    rows = memory_rows(storm.memory, storm.figures.get("warm_open", 0), args.registrations)
    report = Report(
        "storm",
        {
            "registrations": args.registrations,
            "per_unit": args.per_unit,
            "clients": args.clients,
            "database": "postgresql" if args.postgres else "sqlite",
            "lead_s": lead,
            "workflow_workers": args.workflow_workers,
            "activity_workers": args.activity_workers,
        },
        figures=storm.figures
        | {
            "workflow_worker_mib_per_1000_open": growth(rows, "workflow-worker"),
            "services_mib_per_1000_open": growth(rows, "services"),
            "temporal_mib_per_1000_open": growth(rows, "temporal"),
        },
        rows=rows,
        notes=[
            "expired: the workflow's payment_expired step (timeline, workflow time); told: the last channel"
            " of the expiry message sent (notification log); seconds after the deadline",
            f"the workflow worker keeps at most {SDK_CACHE} workflows per process in its cache (temporalio's"
            " max_cached_workflows default): beyond that, open registrations are evicted and replayed when"
            " their timer fires",
            "per_1000_open_mib: the growth between the two samples with registrations open (a tenth of"
            " the units, then all), past the processes' first-request warm-up",
        ],
    )
    report.print()
    path = report.write(args.report_dir)
    print(f"   report: {path}")


if __name__ == "__main__":
    main()

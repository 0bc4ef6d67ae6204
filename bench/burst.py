"""Registration burst: how many registrations per second the registration API accepts when many units
register their people at once (the last days before a deadline), and how long each waits.

    ./expo bench burst [--clients 1,8,32,64] [--registrations 200] [--duration S] [--with-photo]
                       [--workflow-workers K] [--activity-workers K] [--database-url URL]

On one embedded stack, for each concurrency level C in turn: C clients, each the account of a unit made
beforehand (sign-ups and units are not timed), register people as fast as their answers come back
(``POST /v1/units/{id}/people``: the request that starts a registration's workflow), until the level's
registrations are sent (or ``--duration`` seconds have passed). Figures per level: registrations per
second accepted, p50/p95/p99 latency, errors by status code; then the time until the stack has caught
up (every registration's workflow has joined its unit's: the work the API's answer started), so that
one level's leftovers do not slow the next. ``--with-photo``: each person's photo is then uploaded and
confirmed too (a fresh upload URL, the PUT to the object store, the confirm), timed apart.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from bench.driver import PHOTO, Driver, Refused, Unit, bounded
from bench.harness import REPORTS, Report, Stopwatch, add_stack_options, latency_figures, stack_for
from deploy.local.stack import Stack
from shared import contracts as c
from shared.temporal import connect, unit_workflow_id

_STATUS = re.compile(r" -> (\d{3}):")


@dataclass
class Burst:
    """One run of registering clients: what they sent and how long each answer took."""

    clients: int
    latencies: list[float] = field(default_factory=list)  # accepted registrations, seconds
    photo_latencies: list[float] = field(default_factory=list)  # upload URL + PUT + confirm, seconds
    errors: Counter[str] = field(default_factory=Counter)  # status code (or exception) -> count
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "C": self.clients,
            "accepted": len(self.latencies),
            "reg/s": round(self.rate, 1),
            **latency_figures(self.latencies),
            "errors": dict(sorted(self.errors.items())) or "-",
        }
        if self.photo_latencies:
            row |= latency_figures(self.photo_latencies, prefix="photo_")
        return row


def _failure(exc: Exception) -> str:
    """An error's key in the counts: the HTTP status code, else the exception's name (a timeout)."""
    found = _STATUS.search(str(exc)) if isinstance(exc, Refused) else None
    return found.group(1) if found else type(exc).__name__


async def upload_photo(driver: Driver, unit: Unit, registration_id: str) -> None:
    """The person's photo as the website sends it: a fresh presigned URL, the PUT, the check."""
    reg = driver.s.registration_url
    upload = await driver.call("POST", f"{reg}/v1/registrations/{registration_id}/photo-upload", unit.headers)
    put = await driver.http.put(upload["url"], content=PHOTO, headers=upload["headers"])
    put.raise_for_status()
    await driver.call("POST", f"{reg}/v1/registrations/{registration_id}/photo-confirm", unit.headers)


async def register_burst(
    driver: Driver,
    units: list[Unit],
    clients: int,
    *,
    count: int | None = None,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
    photo: bool = False,
    rate: float | None = None,
) -> Burst:
    """``clients`` concurrent clients, client i registering into ``units[i % len(units)]``, until
    ``count`` registrations were sent, ``duration`` seconds passed or ``stop`` is set (the first).
    Without pause, or together at most ``rate`` registrations a second (a steady arrival rate)."""
    burst = Burst(clients)
    sent = 0
    clock = Stopwatch()

    def more() -> bool:
        return not (
            (count is not None and sent >= count)
            or (duration is not None and clock.elapsed >= duration)
            or (stop is not None and stop.is_set())
        )

    async def client(unit: Unit) -> None:
        nonlocal sent
        while more():
            sent += 1
            if rate is not None:  # the n-th registration is due n/rate seconds after the start
                await asyncio.sleep(max(0.0, clock.start + (sent - 1) / rate - time.perf_counter()))
            start = time.perf_counter()
            try:
                registration_id = await driver.register_person(unit, photo=False)
            except (Refused, httpx.HTTPError) as exc:
                burst.errors[_failure(exc)] += 1
                continue
            burst.latencies.append(time.perf_counter() - start)
            if photo:
                start = time.perf_counter()
                try:
                    await upload_photo(driver, unit, registration_id)
                except (Refused, httpx.HTTPError) as exc:
                    burst.errors[f"photo {_failure(exc)}"] += 1
                    continue
                burst.photo_latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(client(units[i % len(units)]) for i in range(clients)))
    burst.elapsed = clock.elapsed
    return burst


def keep_logs(stack: Stack, bursts: list[Burst], directory: Path, scenario: str) -> Path | None:
    """The stack's logs, copied beside the report if the servers answered 5xx or dropped a connection
    (the stack's directory goes when it stops)."""
    if not any(key[-3:].startswith("5") or not key[-3:].isdigit() for b in bursts for key in b.errors):
        return None
    kept = directory / f"{scenario}-logs"
    shutil.copytree(stack.logs, kept, dirs_exist_ok=True)
    return kept


async def settled(temporal: Client, edition: str, units: list[Unit], *, timeout: float) -> float:
    """Seconds until every registration of ``units`` has joined its unit's workflow (the last step of
    a new registration's start), asking each unit's workflow once a second."""
    clock = Stopwatch()
    pending = list(units)
    while pending:
        progress = await asyncio.gather(
            *(
                temporal.get_workflow_handle(unit_workflow_id(edition, unit.unit_id)).query(
                    c.QUERY_PROGRESS, result_type=c.UnitProgress
                )
                for unit in pending
            )
        )
        pending = [
            unit
            for unit, seen in zip(pending, progress, strict=True)
            if not set(unit.registration_ids) <= set(seen.members)
        ]
        if pending and clock.elapsed > timeout:
            raise TimeoutError(f"{len(pending)} units still have registrations starting after {timeout:.0f}s")
        if pending:
            await asyncio.sleep(1)
    return clock.elapsed


async def make_units(driver: Driver, count: int) -> list[Unit]:
    """``count`` units' accounts, each with its unit registered (a few at a time: sign-up hashes)."""

    async def one() -> Unit:
        unit = await driver.sign_up()
        await driver.register_unit(unit)
        return unit

    units: list[Unit] = await bounded(8, (one() for _ in range(count)))
    return units


async def run(args: argparse.Namespace, report: Report) -> None:
    levels: list[int] = args.clients
    with stack_for(args) as stack:
        settings = stack.settings
        driver = Driver(settings, connections=max(levels) + 8)
        temporal = await connect(settings)
        try:
            bursts: list[Burst] = []
            units = await make_units(driver, max(levels))
            # Warm up (not counted): connections, the first workflows, the services' caches.
            await register_burst(driver, units[:4], 4, count=20)
            await settled(temporal, settings.edition, units[:4], timeout=args.settle_timeout)
            for clients in levels:
                burst = await register_burst(
                    driver,
                    units[:clients],
                    clients,
                    count=None if args.duration else args.registrations,
                    duration=args.duration,
                    photo=args.with_photo,
                )
                lag = await settled(temporal, settings.edition, units[:clients], timeout=args.settle_timeout)
                row = burst.row()
                row["caught_up_s"] = round(lag, 1)
                row["started/s"] = round(len(burst.latencies) / (burst.elapsed + lag), 1)
                report.rows.append(row)
                print(f"   C={clients}: {row}", flush=True)
                bursts.append(burst)
            if kept := keep_logs(stack, bursts, args.report_dir, "burst"):
                report.notes.append(f"server errors: the stack's logs are kept in {kept}")
        finally:
            await driver.close()
    best = max(report.rows, key=lambda row: row["reg/s"])
    report.figures = {
        "best_registrations_per_second": best["reg/s"],
        "at_clients": best["C"],
        "its_p99_ms": best["p99_ms"],
    }
    report.notes += [
        "reg/s: registrations the API accepted per second while the level ran; p50..max: their latency",
        "caught_up_s: after the level, until every registration's workflow had joined its unit's;"
        " started/s: accepted / (level time + caught_up_s), the rate the whole stack keeps up with",
    ]
    if args.with_photo:
        report.notes.append(
            "photo_*: the photo step apart (fresh upload URL, PUT to the object store, confirm)"
        )


def _levels(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clients", type=_levels, default=[1, 8, 32, 64], help="concurrency levels, e.g. 1,8,32"
    )
    parser.add_argument("--registrations", type=int, default=200, help="registrations per level")
    parser.add_argument("--duration", type=float, default=None, help="seconds per level instead of a count")
    parser.add_argument("--with-photo", action="store_true", help="also upload and confirm each photo")
    add_stack_options(parser)
    parser.add_argument("--settle-timeout", type=float, default=600)
    parser.add_argument("--report-dir", type=Path, default=REPORTS)
    args = parser.parse_args()

    report = Report(
        "burst",
        {
            "clients": ",".join(map(str, args.clients)),
            "registrations_per_level": f"{args.duration}s" if args.duration else args.registrations,
            "with_photo": args.with_photo,
            "workflow_workers": args.workflow_workers,
            "activity_workers": args.activity_workers,
            "database": "postgresql" if args.database_url else "sqlite",
        },
    )
    asyncio.run(run(args, report))
    report.print()
    print(f"   report: {report.write(args.report_dir)}")


if __name__ == "__main__":
    main()

"""Staff decisions under load: how long a mission's reviewer waits for an approval's answer (HTTP to
the review API, the update on the subject's workflow, and back) while a registration burst runs, and
where that time goes.

    ./expo bench decisions [--units 15] [--people 15] [--load-clients 32] [--load-rate R] [--deciders 1]
                           [--samples 15] [--workflow-workers K] [--activity-workers K]

Setup (not timed): units awaiting their affiliation review, and people paid (one QR order per unit)
whose personnel review is pending, twice over: one set for the baseline, one for the run under load.
Baseline: the reviewer approves each unit and each person (alternately, ``--deciders`` at a time) on an
otherwise idle stack. Under load: the same while ``--load-clients`` clients register people into units
of their own (scenario 3's burst), without pause or at a steady ``--load-rate`` registrations a second
(a load the stack carries, where flat out is more than one workflow worker keeps up with); the load
reached is reported beside the figures.

Where the time goes: for ``--samples`` decisions of each kind and phase, the subject's workflow history
(the Temporal server's clock is this machine's) splits the round trip into the review API and the update
request until the workflow task that accepts it is scheduled, the workflow tasks' queue waits and runs,
each activity the update awaits before answering (queue wait and run), and the answer's way back.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.burst import Burst, keep_logs, make_units, register_burst
from bench.driver import Driver, S, Unit, bounded
from bench.harness import REPORTS, Report, add_stack_options, latency_figures, stack_for, table
from shared import contracts as c
from shared.temporal import connect, registration_workflow_id, unit_workflow_id

E = EventType
PEOPLE_PER_UNIT = 10


@dataclass
class Decided:
    """One decision as the reviewer saw it: when it was sent (wall clock) and how long its answer took."""

    kind: str  # "units" or "registrations"
    subject_id: str
    sent_at: float
    seconds: float


async def wait_queued(driver: Driver, kind: str, wanted: set[str], *, timeout: float) -> None:
    """Until every subject of ``wanted`` is in the review queue of ``kind`` ("unit" or "person")."""
    deadline = time.monotonic() + timeout
    while not wanted <= await driver.queued(kind):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all {len(wanted)} {kind}s reached the review queue in {timeout:.0f}s")
        await asyncio.sleep(1)


async def reviewed_people(driver: Driver, count: int, *, timeout: float) -> list[str]:
    """``count`` people paid and awaiting their personnel review, ten to a unit (registered with their
    photos, each unit approved and paid for by one QR order)."""
    units = await make_units(driver, -(-count // PEOPLE_PER_UNIT))
    left = count
    for unit in units:
        take = min(PEOPLE_PER_UNIT, left)
        left -= take
        await bounded(4, (driver.register_person(unit) for _ in range(take)))
    await wait_queued(driver, "unit", {unit.unit_id for unit in units}, timeout=timeout)
    for unit in units:
        await driver.decide("units", unit.unit_id)
    await driver.wait_all(units, {S.UNPAID}, timeout=timeout)
    await bounded(4, (driver.pay_by_qr(unit) for unit in units))
    await driver.wait_all(units, {S.TO_BE_REVIEWED}, timeout=timeout)
    people = [rid for unit in units for rid in unit.registration_ids]
    await wait_queued(driver, "person", set(people), timeout=timeout)
    return people


async def decide_all(driver: Driver, subjects: list[tuple[str, str]], deciders: int) -> list[Decided]:
    """Approve each ``(kind, subject id)``, ``deciders`` at a time."""

    async def one(kind: str, subject_id: str) -> Decided:
        sent_at = time.time()
        return Decided(kind, subject_id, sent_at, await driver.decide(kind, subject_id))

    done: list[Decided] = await bounded(deciders, (one(kind, sid) for kind, sid in subjects))
    return done


def _alternate(units: list[str], people: list[str]) -> list[tuple[str, str]]:
    """Unit and person decisions taken turn about, so that both meet the same load."""
    pairs: list[tuple[str, str]] = []
    for n in range(max(len(units), len(people))):
        pairs += [("units", units[n])] if n < len(units) else []
        pairs += [("registrations", people[n])] if n < len(people) else []
    return pairs


# ------------------------------------------------------------------------------------ where the time goes


def _at(event: HistoryEvent) -> float:
    return event.event_time.ToMicroseconds() / 1e6


def _chain(events: list[HistoryEvent]) -> list[tuple[float, str]]:
    """The decision's path through the history: (time, step) from the workflow task that accepted the
    update to the update's completion; empty if the history has no decision."""
    accepted = next(
        (
            i
            for i, e in enumerate(events)
            if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
            and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            == c.UPDATE_DECIDE
        ),
        None,
    )
    if accepted is None:
        return []
    accepted_id = events[accepted].event_id
    # The workflow task that accepted it: its completed, started and scheduled events, just before.
    first = accepted
    for kind in (
        E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    ):
        if first > 0 and events[first - 1].event_type == kind:
            first -= 1
    activity_names: dict[int, str] = {}
    steps: list[tuple[float, str]] = []
    for event in events[first:]:
        kind = event.event_type
        if kind == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activity_names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            steps.append((_at(event), f"activity scheduled {activity_names[event.event_id]}"))
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            name = activity_names.get(event.activity_task_started_event_attributes.scheduled_event_id, "?")
            steps.append((_at(event), f"activity started {name}"))
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            name = activity_names.get(event.activity_task_completed_event_attributes.scheduled_event_id, "?")
            steps.append((_at(event), f"activity completed {name}"))
        elif kind in (
            E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        ):
            steps.append((_at(event), E.Name(kind).removeprefix("EVENT_TYPE_").lower()))
        elif (
            kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
            and event.workflow_execution_update_completed_event_attributes.accepted_event_id == accepted_id
        ):
            steps.append((_at(event), "update completed"))
            break
    # An activity's started event is written when it ends; its time is when it started.
    return sorted(steps, key=lambda step: step[0])


def _segment(previous: str, step: str) -> str:
    """What the time between two steps was spent on."""
    if step == "workflow_task_started":
        return "workflow tasks: queue wait (worker busy or polling)"
    if step == "workflow_task_completed":
        return "workflow tasks: run (SDK + workflow code)"
    if step.startswith("activity started "):
        return f"{step.removeprefix('activity started ')}: queue wait"
    if step.startswith("activity completed "):
        return f"{step.removeprefix('activity completed ')}: run"
    if step == "workflow_task_scheduled" and previous.startswith("activity completed"):
        return "activity result -> workflow task scheduled"
    return "server bookkeeping"


def split(decided: Decided, events: list[HistoryEvent]) -> dict[str, float] | None:
    """The decision's round trip in milliseconds by what it was spent on (None: no decision found)."""
    steps = _chain(events)
    if not steps:
        return None
    answered_at = decided.sent_at + decided.seconds
    parts: dict[str, float] = defaultdict(float)
    parts["review API + update request -> its workflow task scheduled"] = (
        steps[0][0] - decided.sent_at
    ) * 1000
    for (before, previous), (after, step) in itertools.pairwise(steps):
        parts[_segment(previous, step)] += (after - before) * 1000
    parts["update completed -> HTTP answer"] = (answered_at - steps[-1][0]) * 1000
    parts["workflow tasks in the chain"] = sum(step == "workflow_task_started" for _, step in steps)
    parts["activities awaited"] = sum(step.startswith("activity completed") for _, step in steps)
    return dict(parts)


async def breakdown(temporal: Client, edition: str, decided: list[Decided]) -> list[dict[str, float]]:
    """Each decision's split (those whose history shows the decision)."""

    async def one(d: Decided) -> dict[str, float] | None:
        workflow_id = (
            unit_workflow_id(edition, d.subject_id)
            if d.kind == "units"
            else registration_workflow_id(edition, d.subject_id)
        )
        history = await temporal.get_workflow_handle(workflow_id).fetch_history()
        return split(d, list(history.events))

    found = await bounded(8, (one(d) for d in decided))
    return [parts for parts in found if parts is not None]


def median_split(splits: list[dict[str, float]]) -> dict[str, float]:
    """Each part's median over the decisions, in the order the parts first appear."""
    names: list[str] = []
    for parts in splits:
        names += [name for name in parts if name not in names]
    return {name: round(statistics.median(parts.get(name, 0.0) for parts in splits), 1) for name in names}


# ------------------------------------------------------------------------------------ the run


async def run(args: argparse.Namespace, report: Report) -> list[dict[str, Any]]:
    """The figures into ``report``; answers the breakdown's table (part, then ms per phase and kind)."""
    splits: dict[str, dict[str, float]] = {}
    with stack_for(args) as stack:
        settings = stack.settings
        driver = Driver(settings, connections=args.load_clients + args.deciders + 8)
        temporal = await connect(settings)
        try:
            await driver.staff_login()
            print("   setup: units, people paid and awaiting review, the load's units", flush=True)
            unit_subjects = await make_units(driver, 2 * args.units)
            people = await reviewed_people(driver, 2 * args.people, timeout=args.setup_timeout)
            await wait_queued(driver, "unit", {u.unit_id for u in unit_subjects}, timeout=args.setup_timeout)
            load_units: list[Unit] = await make_units(driver, args.load_clients)
            unit_ids = [unit.unit_id for unit in unit_subjects]

            print("   baseline: decisions on an idle stack", flush=True)
            baseline = await decide_all(
                driver, _alternate(unit_ids[: args.units], people[: args.people]), args.deciders
            )
            print(f"   under load: decisions while {_load(args)}", flush=True)
            stop = asyncio.Event()
            load = asyncio.create_task(
                register_burst(driver, load_units, args.load_clients, stop=stop, rate=args.load_rate)
            )
            await asyncio.sleep(args.ramp)
            loaded = await decide_all(
                driver, _alternate(unit_ids[args.units :], people[args.people :]), args.deciders
            )
            stop.set()
            burst: Burst = await load
            if kept := keep_logs(stack, [burst], args.report_dir, "decisions"):
                report.notes.append(f"server errors under load: the stack's logs are kept in {kept}")

            for phase, decided in (("baseline", baseline), ("under load", loaded)):
                for kind, label in (("units", "unit approval"), ("registrations", "person approval")):
                    seconds = [d.seconds for d in decided if d.kind == kind]
                    report.rows.append(
                        {"phase": phase, "decision": label, "n": len(seconds)} | latency_figures(seconds)
                    )
                    samples = [d for d in decided if d.kind == kind][: args.samples]
                    found = await breakdown(temporal, settings.edition, samples)
                    splits[f"{phase}: {label} (n={len(found)})"] = median_split(found)
        finally:
            await driver.close()
    report.figures = {
        "load: registrations/s accepted meanwhile": round(burst.rate, 1),
        "load: registration p99 ms": latency_figures(burst.latencies)["p99_ms"],
        "load: registration errors": dict(burst.errors) or "-",
        **{f"{row['phase']} {row['decision']} p99 ms": row["p99_ms"] for row in report.rows},
    }
    report.notes += [
        f"load: {_load(args)} (scenario 3) during the decisions under load; the baseline ran on an idle"
        " stack",
        "where the time goes: from the subjects' workflow histories (the server's timestamps) and the"
        " client's send and answer times, same clock; the first part covers the review API's auth and"
        " database read, the update RPC, and the update's speculative workflow task being scheduled",
    ]
    parts: list[str] = []
    for split_ms in splits.values():
        parts += [part for part in split_ms if part not in parts]
    return [
        {"part (median ms)": part} | {column: split_ms.get(part, "") for column, split_ms in splits.items()}
        for part in parts
    ]


def _load(args: argparse.Namespace) -> str:
    if args.load_rate is None:
        return f"{args.load_clients} clients registering people without pause"
    return f"people registered at a steady {args.load_rate:g}/s by up to {args.load_clients} clients"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=15, help="unit approvals per phase")
    parser.add_argument("--people", type=int, default=15, help="person approvals per phase")
    parser.add_argument(
        "--load-clients", type=int, default=32, help="registering clients during the load phase"
    )
    parser.add_argument(
        "--load-rate",
        type=float,
        default=None,
        help="registrations/s during the load phase (default: as fast as the clients go)",
    )
    parser.add_argument("--deciders", type=int, default=1, help="decisions sent at once")
    parser.add_argument("--samples", type=int, default=15, help="decisions per kind and phase to split")
    parser.add_argument("--ramp", type=float, default=3.0, help="seconds of load before the first decision")
    add_stack_options(parser)
    parser.add_argument("--setup-timeout", type=float, default=600)
    parser.add_argument("--report-dir", type=Path, default=REPORTS)
    args = parser.parse_args()

    report = Report(
        "decisions",
        {
            "units": args.units,
            "people": args.people,
            "load_clients": args.load_clients,
            "load_rate": args.load_rate,
            "deciders": args.deciders,
            "workflow_workers": args.workflow_workers,
            "activity_workers": args.activity_workers,
            "database": "postgresql" if args.database_url else "sqlite",
        },
    )
    where = asyncio.run(run(args, report))
    report.print()
    if where:
        print("\n   where an approval's time goes (median of the sampled decisions' histories):")
        print(table(where))
    report.figures["where_the_time_goes_ms"] = where
    print(f"   report: {report.write(args.report_dir)}")


if __name__ == "__main__":
    main()

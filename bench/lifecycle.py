"""Scenarios 1 and 2: the raw limit (a skeleton lifecycle) and the full lifecycle, and their ratio.

    ./expo bench lifecycle [--registrations 100] [--people 5] [--concurrency 10]
                           [--workflow-workers 1] [--activity-workers 1] [--profile]

On one embedded stack (bench/harness.py):

1. The shape of a real lifecycle, measured: a sample unit is driven to "dispatched" through the HTTP
   APIs, then every workflow the stack started meanwhile is listed and its history read: activities,
   signals, updates, timers, workflow tasks and upserts per registration.
2. Raw limit: the skeleton (bench/skeleton.py), whose workflows have the same messages and the same
   activities as no-ops, on its own task queues and worker processes on the same Temporal server; its
   shape, read the same way, is printed beside the real one. N skeleton lifecycles in units of the same
   size, as many units at once as the full run: lifecycles per second.
3. Full lifecycle: N registrations in units of K people from sign-up to a dispatched certificate over
   the real HTTP APIs, C units at once, staff deciding units and people as soon as they are queued:
   lifecycles per second (N / wall time from the first request to the last dispatched), each step's
   time, and the ratio full / raw.

``--profile`` reads every history of both runs and attributes their time: per activity type the time
queued (schedule to start) and running (start to close), workflow tasks, signals between workflows and
updates. The CPU seconds each process of the stack used in each run are always reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecution

from bench import skeleton
from bench.driver import DISPATCHED, Driver, Refused, S, bounded
from bench.harness import (
    REPORTS,
    ROOT,
    Report,
    Stopwatch,
    add_stack_options,
    latency_figures,
    percentile,
    stack_for,
    table,
)
from deploy.local.stack import Process, Stack
from shared import contracts as c
from shared.temporal import connect

E = EventType
TIMEOUT = 600.0  # seconds one unit may take to reach a step before the run is called stuck
RETRIES = 20  # a reviewer's attempts at one decision


# ---------------------------------------------------------------------------- the full lifecycle


class Staff:
    """The mission's reviewers: they decide every unit and person as soon as the review queue shows it
    (``every`` seconds between looks at the queue), and time each decision."""

    def __init__(self, driver: Driver, *, every: float = 0.2, reviewers: int = 16) -> None:
        self.driver = driver
        self.every = every
        self.latencies: dict[str, list[float]] = {"units": [], "registrations": []}
        self.errors: list[str] = []
        self._seen: set[str] = set()
        self._reviewers = asyncio.Semaphore(reviewers)
        self._decisions: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            for kind, path in (("unit", "units"), ("person", "registrations")):
                for subject in await self.driver.queued(kind) - self._seen:
                    self._seen.add(subject)
                    task = asyncio.create_task(self._decide(path, subject))
                    self._decisions.add(task)
                    task.add_done_callback(self._decisions.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every)

    async def _decide(self, path: str, subject: str) -> None:
        """Decide; refused because the workflow has not yet reached the state the queue shows (or the
        request failed), try again shortly, as a reviewer would. Every refusal is kept for the report."""
        for _attempt in range(RETRIES):
            async with self._reviewers:
                try:
                    self.latencies[path].append(await self.driver.decide(path, subject))
                    return
                except (Refused, httpx.HTTPError) as exc:
                    self.errors.append(str(exc) or type(exc).__name__)
                    if isinstance(exc, Refused) and "not_awaiting_review" not in str(exc):
                        return
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._decisions)


async def drive_unit(driver: Driver, people: int, every: float) -> dict[str, float]:
    """One unit's account from sign-up to every person dispatched: each step's seconds."""
    watch, steps = Stopwatch(), {}
    unit = await driver.sign_up()
    await driver.register_unit(unit)
    for _ in range(people):
        await driver.register_person(unit)
    steps["register"] = watch.elapsed
    await driver.wait_all([unit], {S.UNPAID}, timeout=TIMEOUT, every=every)
    steps["until_unpaid"] = watch.elapsed - steps["register"]
    await driver.pay_by_qr(unit)
    steps["pay"] = watch.elapsed - steps["register"] - steps["until_unpaid"]
    await driver.wait_all([unit], DISPATCHED, timeout=TIMEOUT, every=every)
    steps["until_dispatched"] = watch.elapsed - sum(steps.values())
    steps["lifecycle"] = watch.elapsed
    return steps


def unit_sizes(registrations: int, people: int) -> list[int]:
    """Units of ``people`` persons (the last one smaller if it does not divide)."""
    sizes = [people] * (registrations // people)
    if registrations % people:
        sizes.append(registrations % people)
    return sizes


async def full_run(
    stack: Stack, sizes: list[int], concurrency: int, every: float
) -> tuple[float, list[dict[str, float]], Staff]:
    """The units through the real APIs, ``concurrency`` at once: wall seconds, each unit's steps, staff."""
    driver = Driver(stack.settings, connections=max(64, 4 * concurrency))
    await driver.staff_login()
    staff = Staff(driver)
    reviewing = asyncio.create_task(staff.run())
    try:
        watch = Stopwatch()
        steps = await bounded(concurrency, (drive_unit(driver, size, every) for size in sizes))
        wall = watch.elapsed
    finally:
        await staff.stop()
        await reviewing
        await driver.close()
    return wall, steps, staff


# ---------------------------------------------------------------------------- the skeleton


def start_skeleton_workers(stack: Stack, workflow_workers: int, activity_workers: int) -> list[Process]:
    """The skeleton's worker processes beside the stack's (stopped with it)."""
    started = []
    for role, copies in (("workflows", workflow_workers), ("activities", activity_workers)):
        for copy in range(1, copies + 1):
            argv = [sys.executable, "-m", "bench.skeleton", "--role", role]
            process = Process(f"skeleton-{role}-{copy}", argv, env={"PYTHONPATH": str(ROOT)})
            started.append(stack.add_process(process))  # the stack stops it with its own processes
    time.sleep(2)  # let them poll their queues before the first lifecycle
    return started


async def skeleton_run(client: Client, sizes: list[int], concurrency: int, label: str) -> float:
    """The skeleton's units, ``concurrency`` at once: wall seconds."""
    watch = Stopwatch()
    units = (skeleton.drive_unit(client, f"{label}-{n}", size) for n, size in enumerate(sizes))
    await asyncio.wait_for(bounded(concurrency, units), TIMEOUT * len(sizes) / concurrency)
    return watch.elapsed


# ---------------------------------------------------------------------------- histories


Histories = list[tuple[str, list[HistoryEvent]]]


async def histories_since(client: Client, since: datetime, until: datetime | None = None) -> Histories:
    """Every workflow started in the window (the stack is fresh: they are the lifecycles'), its type and
    its history's events."""
    query = f'StartTime >= "{since.isoformat().replace("+00:00", "Z")}"'
    if until:
        query += f' AND StartTime < "{until.isoformat().replace("+00:00", "Z")}"'
    found = [execution async for execution in client.list_workflows(query)]
    gate = asyncio.Semaphore(16)

    async def read(execution: WorkflowExecution) -> tuple[str, list[HistoryEvent]]:
        async with gate:
            history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        return execution.workflow_type, list(history.events)

    return list(await asyncio.gather(*(read(execution) for execution in found)))


WORKFLOW_KIND = {
    "BuyerRegistration": "registration",
    "SkeletonRegistration": "registration",
    "UnitReview": "unit",
    "SkeletonUnit": "unit",
    "PaymentOrder": "payment order",
    "SkeletonOrder": "payment order",
}


# The other events a shape counts, by what they are called in the report.
COUNTED_EVENTS = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "updates",
    E.EVENT_TYPE_TIMER_STARTED: "timers started",
    E.EVENT_TYPE_TIMER_FIRED: "timers fired",
    E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: "workflow tasks",
    E.EVENT_TYPE_WORKFLOW_TASK_FAILED: "workflow tasks failed",
    E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "search attribute upserts",
    E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "child workflows",
}


def shape(histories: Histories) -> Counter[str]:
    """What the workflows' histories count: the lifecycle's messages, by kind."""
    counts: Counter[str] = Counter()
    for workflow_type, events in histories:
        counts[f"workflows started: {WORKFLOW_KIND.get(workflow_type, workflow_type)}"] += 1
        for event in events:
            kind = event.event_type
            counts["history events"] += 1
            if kind == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                counts["activities scheduled"] += 1
                counts[f"  activity {name}"] += 1
            elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                sent_by_workflow = event.workflow_execution_signaled_event_attributes.HasField(
                    "external_workflow_execution"
                )
                counts["signals from workflows" if sent_by_workflow else "signals from clients"] += 1
            elif kind in COUNTED_EVENTS:
                counts[COUNTED_EVENTS[kind]] += 1
    return counts


def shape_rows(real: Counter[str], real_n: int, raw: Counter[str], raw_n: int) -> list[dict[str, Any]]:
    """Real and skeleton counts per registration, side by side."""
    order = [
        "workflows started: registration",
        "workflows started: unit",
        "workflows started: payment order",
        "activities scheduled",
        *sorted(k for k in real | raw if k.startswith("  activity ")),
        "signals from clients",
        "signals from workflows",
        "updates",
        "timers started",
        "timers fired",
        "workflow tasks",
        "workflow tasks failed",
        "search attribute upserts",
        "child workflows",
        "history events",
    ]
    keys = order + sorted(set(real | raw) - set(order))
    return [
        {
            "per registration": key,
            "real": round(real[key] / real_n, 2),
            "skeleton": round(raw[key] / raw_n, 2),
        }
        for key in keys
        if real[key] or raw[key]
    ]


def _at(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def attribution(histories: Histories, top: int = 25) -> list[dict[str, Any]]:
    """Where the workflows' time went: per activity type the seconds queued (scheduled to started) and
    running (started to closed), workflow tasks queued and processed, signals from one workflow to
    another, updates from acceptance to completion. Sorted by total seconds."""
    spans: dict[str, list[float]] = defaultdict(list)
    for workflow_type, events in histories:
        kind = WORKFLOW_KIND.get(workflow_type, workflow_type)
        by_id = {event.event_id: event for event in events}
        for event in events:
            t = event.event_type
            if t == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                scheduled = by_id[event.activity_task_started_event_attributes.scheduled_event_id]
                name = scheduled.activity_task_scheduled_event_attributes.activity_type.name
                spans[f"activity queued: {name}"].append(_at(event) - _at(scheduled))
            elif t == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                attributes = event.activity_task_completed_event_attributes
                scheduled = by_id[attributes.scheduled_event_id]
                name = scheduled.activity_task_scheduled_event_attributes.activity_type.name
                spans[f"activity running: {name}"].append(
                    _at(event) - _at(by_id[attributes.started_event_id])
                )
            elif t == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                scheduled = by_id[event.workflow_task_started_event_attributes.scheduled_event_id]
                spans[f"workflow task queued: {kind}"].append(_at(event) - _at(scheduled))
            elif t == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                started = by_id[event.workflow_task_completed_event_attributes.started_event_id]
                spans[f"workflow task processing: {kind}"].append(_at(event) - _at(started))
            elif t == E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED:
                initiated = by_id[
                    event.external_workflow_execution_signaled_event_attributes.initiated_event_id
                ]
                spans[f"signal to another workflow: from {kind}"].append(_at(event) - _at(initiated))
            elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
                accepted = by_id[event.workflow_execution_update_completed_event_attributes.accepted_event_id]
                spans[f"update accepted to completed: {kind}"].append(_at(event) - _at(accepted))
    rows: list[dict[str, Any]] = [
        {
            "where": name,
            "count": len(values),
            "total_s": round(sum(values), 2),
            "mean_ms": round(sum(values) / len(values) * 1000, 1),
            "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        }
        for name, values in spans.items()
    ]
    return sorted(rows, key=lambda row: -float(row["total_s"]))[:top]


def registration_spans(histories: Histories) -> list[float]:
    """Each registration workflow's seconds from its start to its certificate's dispatch (the dispatch
    activity's completion)."""
    spans = []
    for workflow_type, events in histories:
        if WORKFLOW_KIND.get(workflow_type) != "registration":
            continue
        by_id = {event.event_id: event for event in events}
        for event in events:
            if event.event_type == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                scheduled = by_id[event.activity_task_completed_event_attributes.scheduled_event_id]
                if (
                    scheduled.activity_task_scheduled_event_attributes.activity_type.name
                    == c.DISPATCH_CERTIFICATE.name
                ):
                    spans.append(_at(event) - _at(events[0]))
    return spans


# ---------------------------------------------------------------------------- CPU


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[name] = (int(fields[11]) + int(fields[12])) / tick
    return used


def stack_pids(stack: Stack) -> dict[str, int]:
    pids = {p.name: p.popen.pid for p in stack.processes if p.popen and p.popen.poll() is None}
    return pids | {"benchmark (client, driver)": os.getpid()}


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process used between two readings."""
    return {name: round(after[name] - before.get(name, 0.0), 1) for name in after if name in before}


# ---------------------------------------------------------------------------- the scenario


@dataclass
class LifecycleReport(Report):
    """The report with more tables than one: CPU by process and, profiled, the time attribution."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def print(self) -> None:
        super().print()
        for name, rows in self.tables.items():
            if rows:
                print(f"\n   {name}\n{table(rows)}")

    def write(self, directory: Path = REPORTS) -> Path:
        path = super().write(directory)
        body = json.loads(path.read_text())
        path.write_text(json.dumps(body | {"tables": self.tables}, indent=2, ensure_ascii=False) + "\n")
        return path


async def measure(args: argparse.Namespace, stack: Stack, report: LifecycleReport) -> None:
    client = await connect(stack.settings)
    sizes = unit_sizes(args.registrations, args.people)
    sample = [args.people] * args.sample_units

    # 1. The real lifecycle's shape, from a sample driven to dispatched (it warms the stack up too).
    since = datetime.now(UTC) - timedelta(seconds=1)
    await full_run(stack, sample, len(sample), args.poll)
    await asyncio.sleep(2)  # background notifications of the last step finish
    real_shape = shape(await histories_since(client, since))

    # 2. The skeleton: its own shape from a sample, then the raw run.
    start_skeleton_workers(stack, args.workflow_workers, args.activity_workers)
    since = datetime.now(UTC) - timedelta(seconds=1)
    await skeleton_run(client, sample, len(sample), "sample")
    raw_shape = shape(await histories_since(client, since))
    pids = stack_pids(stack)
    cpu_before = cpu_seconds(pids)
    raw_since = datetime.now(UTC) - timedelta(seconds=1)
    raw_wall = await skeleton_run(client, sizes, args.concurrency, "raw")
    raw_until = datetime.now(UTC) + timedelta(seconds=1)
    raw_cpu = cpu_used(cpu_before, cpu_seconds(pids))

    # 3. The full lifecycle.
    cpu_before = cpu_seconds(pids)
    full_since = datetime.now(UTC) - timedelta(seconds=1)
    full_wall, steps, staff = await full_run(stack, sizes, args.concurrency, args.poll)
    full_cpu = cpu_used(cpu_before, cpu_seconds(pids))

    n = sum(sizes)
    raw_rate, full_rate = n / raw_wall, n / full_wall
    report.figures |= {
        "raw_lifecycles_per_s": round(raw_rate, 2),
        "raw_wall_s": round(raw_wall, 1),
        "full_lifecycles_per_s": round(full_rate, 2),
        "full_wall_s": round(full_wall, 1),
        "full_to_raw_ratio": round(full_rate / raw_rate, 3),
    }
    report.tables["a unit's steps (full run)"] = [
        {"step": step} | latency_figures([s[step] for s in steps])
        for step in ("register", "until_unpaid", "pay", "until_dispatched", "lifecycle")
    ]
    for path, latencies in staff.latencies.items():
        report.figures |= latency_figures(latencies, f"decide_{path}_")
    report.figures["staff_refusals"] = len(staff.errors)
    report.rows = shape_rows(real_shape, sum(sample), raw_shape, sum(sample))
    report.tables["CPU seconds by process"] = [
        {"process": name, "raw_run": raw_cpu.get(name, 0.0), "full_run": full_cpu.get(name, 0.0)}
        for name in sorted(set(raw_cpu) | set(full_cpu), key=lambda k: -full_cpu.get(k, 0.0))
    ]
    if staff.errors:
        kinds = Counter(error.split(": ", 1)[-1][:160] for error in staff.errors)
        report.notes += [f"staff refusal x{n}: {error}" for error, n in kinds.most_common(3)]

    if args.profile:
        await asyncio.sleep(2)
        full_histories = await histories_since(client, full_since)
        raw_histories = await histories_since(client, raw_since, raw_until)
        report.tables["where the time goes, full run (from every history)"] = attribution(full_histories)
        report.tables["where the time goes, raw run (from every history)"] = attribution(raw_histories)
        spans = registration_spans(full_histories)
        report.figures |= latency_figures(spans, "full_registration_start_to_dispatch_")
        report.figures |= latency_figures(
            registration_spans(raw_histories), "raw_registration_start_to_dispatch_"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registrations", type=int, default=100, help="lifecycles in each run (N)")
    parser.add_argument("--people", type=int, default=5, help="people per unit (K)")
    parser.add_argument("--concurrency", type=int, default=10, help="units (buyers) in flight at once (C)")
    parser.add_argument("--sample-units", type=int, default=1, help="units driven to read the shape from")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between a buyer's status checks")
    add_stack_options(parser)
    parser.add_argument("--profile", action="store_true", help="attribute the time from every history")
    parser.add_argument("--report", type=Path, default=REPORTS / "lifecycle.json")
    args = parser.parse_args()

    report = LifecycleReport(
        args.report.stem,
        {
            "registrations": args.registrations,
            "people_per_unit": args.people,
            "concurrency": args.concurrency,
            "workflow_workers": args.workflow_workers,
            "activity_workers": args.activity_workers,
            "profile": args.profile,
        },
    )
    with stack_for(args) as stack:
        asyncio.run(measure(args, stack, report))
    report.print()
    path = report.write(args.report.parent)
    print(f"   report: {path}")

"""Scenario 7: scale. How the figures change with N and with the number of worker processes, and what
they project for 410,000 registrations on one machine and on a cluster.

    ./expo bench scale [--sizes 1000,10000] [--workers 1,2] [--lifecycle-registrations 100]
                       [--postgres SERVER_URL] [--only storm|lifecycle] [--scale-out-up-to N] [--reuse]
                       [--report-dir var/bench]

It runs the other scenarios, each as its own process on its own stack, one after the other (never two
at once: the machine has two cores), and reads back their JSON reports (kept in ``<report-dir>/scale-runs``):

- for each K in ``--workers`` (K worker processes per queue: the workflow worker and every activity
  worker), ``lifecycle``: the raw limit (skeleton) and the full lifecycle, lifecycles/s and their ratio;
- for each N in ``--sizes`` and each K, ``storm``: N unpaid registrations and one deadline: the last
  expiry and the last buyer told (seconds after the deadline), expiries/s, memory per 1,000 open
  registrations per kind of process and the whole stack's with N open.

Then the matrix, and the projection for 410,000 registrations (one machine; a cluster of K workers);
every assumption it makes is in the report's notes. ``--reuse`` reads a sub-run's report left by an
earlier run with the same parameters instead of running it again (a long run that failed part way).

The storm's deadline must come after every registration is unpaid: scale passes storm an explicit
``--lead`` (``storm_lead``) from the cost per registration the last storm measured (``--lead-cost``
before the first), not storm's own conservative ``auto_lead``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.harness import REPORTS, ROOT
from bench.lifecycle import LifecycleReport
from bench.storm import SDK_CACHE

TARGET = 410_000  # registrations a year (the figure)
UNPAID_SHARE = 0.10  # the stated share of registrations still unpaid at one deadline
CLUSTER_WORKERS = (4, 8, 16)
STACK_START_S = 60.0  # the embedded stack's start with a few more workers (≈20 s measured), and room
LEAD_MARGIN = 2.0  # times the measured cost per registration: cost grows with N and with the load
LEAD_COST_S = 0.15  # seconds per registration before any storm measured one (a 200-storm: 0.12 s)
LINEAR_HELD = 0.8  # expiries/s at the largest N over the smallest's: at least this and it "held"


# ---------------------------------------------------------------------------- sub-runs


def sub_run(scenario: str, options: list[str], report: Path, reuse: bool) -> dict[str, Any] | None:
    """``python -m bench <scenario> <options>`` in its own process (its output streams to the terminal),
    then its report; None if it failed. With ``reuse``, a report already at ``report`` is read instead:
    its path names the parameters that matter (N, K, the database), so an earlier run's fits."""
    if reuse and report.exists():
        print(f"\n-- reusing {report}", flush=True)
        return dict(json.loads(report.read_text()))
    report.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "bench", scenario, *options]
    print(f"\n-- {shlex.join(argv)}", flush=True)
    done = subprocess.run(argv, cwd=ROOT, check=False)  # noqa: S603 (our own interpreter and module)
    if done.returncode != 0 or not report.exists():
        print(f"-- {scenario} failed (exit code {done.returncode})", flush=True)
        return None
    return dict(json.loads(report.read_text()))


def storm_lead(registrations: int, seconds_per_registration: float) -> float:
    """Storm's ``--lead`` (seconds from the stack's start to the deadline): the stack's start, then N
    registrations opened and unpaid at ``LEAD_MARGIN`` times the cost per registration measured.
    Assumption: registering N costs at most twice N times what the last (smaller) storm measured; a
    run not ready in time stops and says so, one ready early only idles until the deadline."""
    return round(STACK_START_S + registrations * seconds_per_registration * LEAD_MARGIN)


def lifecycle_row(k: int, report: dict[str, Any] | None) -> dict[str, Any]:
    f = report["figures"] if report else {}
    return {
        "K": k,
        "raw_per_s": f.get("raw_lifecycles_per_s", "failed"),
        "full_per_s": f.get("full_lifecycles_per_s", "failed"),
        "ratio": f.get("full_to_raw_ratio", "failed"),
        "staff_refusals": f.get("staff_refusals", ""),
    }


def storm_row(n: int, k: int, report: dict[str, Any] | None) -> dict[str, Any]:
    """A storm's key figures: when the last registration expired and the last buyer was told, the
    rates, memory growth per 1,000 open by kind of process, and memory with N open."""
    if report is None:
        return {"N": n, "K": k, "last_expiry_s": "failed"}
    f = report["figures"]
    by_process = {row["process"]: row for row in report["rows"]}
    open_column = f"open_{n}_mib"
    workflow_workers = [r for name, r in by_process.items() if name.startswith("workflow-worker")]
    return {
        "N": n,
        "K": k,
        "unpaid_after_s": f["all_unpaid_s"],
        "idle_s": f["idle_before_deadline_s"],  # the lead's slack: what storm_lead could spare
        "s_per_reg": round(f["all_unpaid_s"] / n, 3),
        "first_expiry_s": f["expired_first_s"],
        "last_expiry_s": f["expired_last_s"],
        "told_by_s": f["told_last_s"],
        "expiries_per_s": f["expiries_per_s"],
        "told_per_s": f["told_per_s"],
        "not_expired": f["not_expired_after_storm"],
        "wf_mib_per_1000": f["workflow_worker_mib_per_1000_open"],
        "temporal_mib_per_1000": f["temporal_mib_per_1000_open"],
        "services_mib_per_1000": f["services_mib_per_1000_open"],
        "wf_worker_open_mib": max((float(r[open_column]) for r in workflow_workers), default=0.0),
        "temporal_open_mib": by_process.get("temporal", {}).get(open_column, 0.0),
        "stack_open_mib": by_process["total"][open_column],
    }


# ---------------------------------------------------------------------------- projection arithmetic


def hours_to_carry(registrations: int, lifecycles_per_s: float) -> float:
    """Hours of lifecycle work for ``registrations`` at ``lifecycles_per_s``. Assumption: the rate
    measured with a hundred-odd registrations in flight holds for any number spread over the year
    (finished lifecycles leave nothing behind that slows the next)."""
    return registrations / lifecycles_per_s / 3600


def storm_fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(offset seconds, expiries per second) of the straight line ``last_expiry = offset + N / rate``
    through the measured (N, last expiry seconds) points, least squares; one point: offset 0.
    Assumption: past the first expiry's fixed delay, a storm's length grows linearly with N (the
    straight line is checked by the ``held`` ratio of expiries/s between the smallest and largest N)."""
    if len(points) == 1 or len({n for n, _ in points}) == 1:
        n = sum(p[0] for p in points) / len(points)
        last = sum(p[1] for p in points) / len(points)
        return 0.0, n / last
    mean_n = sum(n for n, _ in points) / len(points)
    mean_s = sum(s for _, s in points) / len(points)
    slope = sum((n - mean_n) * (s - mean_s) for n, s in points) / sum((n - mean_n) ** 2 for n, _ in points)
    if slope <= 0:  # longer with fewer: noise, no rate to extrapolate; the largest N's own rate then
        n, last = max(points)
        return 0.0, n / last
    return max(0.0, mean_s - slope * mean_n), 1 / slope


def storm_minutes(unpaid: int, fit: tuple[float, float]) -> float:
    """Minutes from the deadline until ``unpaid`` registrations have all expired, on ``storm_fit``'s
    straight line."""
    offset, rate = fit
    return (offset + unpaid / rate) / 60


def grown_mib(measured_mib: float, at: int, per_1000_mib: float, to: int, bound: int | None = None) -> float:
    """Resident MiB with ``to`` open registrations, from ``measured_mib`` with ``at`` open and the
    measured growth per 1,000 open. Assumption: linear growth, up to ``bound`` open registrations
    (the workflow worker's SDK cache) and flat past it: beyond the cache, workflows are evicted and
    replayed when their timer fires."""
    if bound is not None:
        at, to = min(at, bound), min(to, bound)
    return measured_mib + max(0, to - at) / 1000 * per_1000_mib


def cluster_speedup(workers: int, ceiling_factor: float) -> float:
    """Speed-up of ``workers`` worker processes per queue over one, each on its own cores. Assumption:
    each adds what one measured alone (linear), until the Temporal server's ceiling: ``ceiling_factor``
    is the skeleton's (raw) lifecycles/s over one worker's full lifecycles/s on this machine; the same
    factor bounds the storm's expiries/s. The skeleton ran on the same two cores as the server, so the
    ceiling measured is a lower bound of one dev server's; a production cluster's history service
    scales by shards and hosts and its ceiling rises with them."""
    return min(float(workers), max(1.0, ceiling_factor))


# ---------------------------------------------------------------------------- the scenario


def measured(value: Any) -> bool:
    """A figure a sub-run measured (a failed one's cells say "failed")."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def best(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return max((row for row in rows if measured(row.get(key))), key=lambda row: float(row[key]), default=None)


class Projection:
    """The projection for ``TARGET`` registrations from the matrix: a table (what, value, basis), its
    figures for the report, and the notes stating every assumption it made."""

    def __init__(self, lifecycles: list[dict[str, Any]], storms: list[dict[str, Any]]) -> None:
        self.lifecycles = [row for row in lifecycles if measured(row.get("full_per_s"))]
        self.storms = [row for row in storms if measured(row.get("last_expiry_s"))]
        self.rows: list[dict[str, Any]] = []
        self.figures: dict[str, Any] = {}
        self.notes: list[str] = []
        self.unpaid_share = round(TARGET * UNPAID_SHARE)
        self.fits: dict[int, tuple[float, float]] = {}
        self.one_machine_lifecycles()
        self.one_machine_storm()
        self.one_machine_memory()
        self.cluster()
        self.notes = [" ".join(note.replace("``", "").split()) for note in self.notes]
        self.notes.append(
            "measured: every figure of the matrix, on this machine (2 shared cores, the benchmark's client"
            " on them too); assumed: everything in the projection table past those figures"
        )

    def line(self, what: str, value: str, basis: str) -> None:
        self.rows.append({"projection": what, "value": value, "basis": basis})

    def assume(self, projection: Any) -> None:
        self.notes.append(projection.__doc__ or "")

    def one_machine_lifecycles(self) -> None:
        fastest = best(self.lifecycles, "full_per_s")
        if not fastest:
            return
        hours = hours_to_carry(TARGET, fastest["full_per_s"])
        self.figures["one_machine_hours_for_410000_lifecycles"] = round(hours, 1)
        self.line(
            f"one machine: {TARGET:,} lifecycles",
            f"{hours:.1f} h",
            f"{fastest['full_per_s']} full lifecycles/s (K={fastest['K']}, the best measured)",
        )
        self.assume(hours_to_carry)

    def one_machine_storm(self) -> None:
        for k in sorted({row["K"] for row in self.storms}):
            runs = sorted((row for row in self.storms if row["K"] == k), key=lambda row: row["N"])
            self.fits[k] = storm_fit([(row["N"], float(row["last_expiry_s"])) for row in runs])
            small, large = runs[0], runs[-1]
            if large["N"] > small["N"] and small["expiries_per_s"]:
                held = large["expiries_per_s"] / small["expiries_per_s"]
                self.figures[f"storm_K{k}_expiries_per_s_largest_over_smallest_N"] = round(held, 2)
                self.line(
                    f"storm K={k}: expiries/s N={small['N']:,} → {large['N']:,}",
                    f"{small['expiries_per_s']} → {large['expiries_per_s']} ({held:.2f}×)",
                    "held: the projection is linear" if held >= LINEAR_HELD else "fell: it is optimistic",
                )
        if not self.fits:
            return
        # The line through the most sizes (a one-size line misses how a storm slows as N grows, e.g.
        # past the workflow cache); of those, the fastest.
        sizes = {k: len({row["N"] for row in self.storms if row["K"] == k}) for k in self.fits}
        k = min(self.fits, key=lambda k: (-sizes[k], storm_minutes(TARGET, self.fits[k])))
        offset, rate = self.fits[k]
        for label, unpaid in (("all", TARGET), (f"{UNPAID_SHARE:.0%}", self.unpaid_share)):
            minutes = storm_minutes(unpaid, self.fits[k])
            self.figures[f"one_machine_storm_minutes_{unpaid}_unpaid"] = round(minutes, 1)
            self.line(
                f"one machine: storm, {label} unpaid ({unpaid:,})",
                f"{minutes:.0f} min",
                f"K={k}: {offset:.1f} s + N / {rate:.1f} expiries/s",
            )
        self.assume(storm_fit)

    def one_machine_memory(self) -> None:
        largest = max(self.storms, key=lambda row: (row["N"], -row["K"]), default=None)
        if not largest:
            return
        n = largest["N"]
        temporal = grown_mib(largest["temporal_open_mib"], n, largest["temporal_mib_per_1000"], TARGET)
        worker = grown_mib(largest["wf_worker_open_mib"], n, largest["wf_mib_per_1000"], TARGET, SDK_CACHE)
        self.figures["one_machine_temporal_dev_server_mib_410000_open"] = round(temporal)
        self.figures["one_machine_workflow_worker_mib_410000_open"] = round(worker)
        self.line(
            f"one machine: Temporal dev server, {TARGET:,} open",
            f"{temporal / 1024:.1f} GiB",
            f"{largest['temporal_open_mib']} MiB at N={n:,} + {largest['temporal_mib_per_1000']} MiB/1,000",
        )
        self.line(
            f"one machine: a workflow worker, {TARGET:,} open",
            f"{worker:.0f} MiB",
            f"bounded by the SDK cache ({SDK_CACHE:,} workflows): {largest['wf_worker_open_mib']} MiB at"
            f" N={n:,}, {largest['wf_mib_per_1000']} MiB/1,000 below the bound",
        )
        self.assume(grown_mib)
        self.notes.append(
            "production runs Temporal on PostgreSQL (deploy/temporal/values.yaml, 512 history shards):"
            " open workflows live in its database, not in a process's memory; the dev server keeps its"
            " state in SQLite and its caches in memory, so its growth here limits the one machine only"
        )

    def cluster(self) -> None:
        one = next((row for row in self.lifecycles if row["K"] == 1), None)
        if not one:
            return
        ceiling = best(self.lifecycles, "raw_per_s")
        factor = float(ceiling["raw_per_s"]) / float(one["full_per_s"]) if ceiling else 1.0
        self.figures["cluster_ceiling_factor"] = round(factor, 2)
        for row in self.lifecycles:
            if row["K"] != 1:
                speedup = float(row["full_per_s"]) / float(one["full_per_s"])
                self.figures[f"measured_lifecycle_speedup_1_to_{row['K']}_workers"] = round(speedup, 2)
                self.line(
                    f"measured here: lifecycles/s, 1 → {row['K']} workers per queue",
                    f"{speedup:.2f}×",
                    "on the same 2 shared cores: below 1 means the processes compete for them",
                )
        for row in self.storms:
            base = next((r for r in self.storms if r["N"] == row["N"] and r["K"] == 1), None)
            if row["K"] != 1 and base and base["expiries_per_s"]:
                speedup = float(row["expiries_per_s"]) / float(base["expiries_per_s"])
                self.figures[f"measured_storm_speedup_N{row['N']}_1_to_{row['K']}_workers"] = round(
                    speedup, 2
                )
                self.line(
                    f"measured here: storm N={row['N']:,} expiries/s, 1 → {row['K']} workers",
                    f"{speedup:.2f}×",
                    "on the same 2 shared cores",
                )
        # Two ceilings: one dev server's as measured here, and none (Temporal's history service
        # scaled with the workers, by shards and hosts: an assumption, not a measurement).
        for k in CLUSTER_WORKERS:
            for server, bound in (
                ("one server as measured", factor),
                ("server scaled with them", math.inf),
            ):
                speedup = cluster_speedup(k, bound)
                key = f"cluster_K{k}_{'measured_ceiling' if bound == factor else 'scaled_server'}"
                hours = hours_to_carry(TARGET, float(one["full_per_s"]) * speedup)
                self.figures[f"{key}_hours_for_410000_lifecycles"] = round(hours, 1)
                value = f"{hours:.1f} h"
                if 1 in self.fits:
                    offset, rate = self.fits[1]
                    for unpaid in (TARGET, self.unpaid_share):
                        minutes = storm_minutes(unpaid, (offset, rate * speedup))
                        self.figures[f"{key}_storm_minutes_{unpaid}_unpaid"] = round(minutes, 1)
                        value += f"; storm of {unpaid:,} {minutes:.0f} min"
                self.line(f"cluster: K={k} workers per queue, {server}", value, f"speed-up {speedup:.1f}×")
        self.assume(cluster_speedup)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000", help="N for the storm, comma-separated")
    parser.add_argument("--workers", default="1,2", help="worker processes per queue (K), comma-separated")
    parser.add_argument("--lifecycle-registrations", type=int, default=100, help="lifecycles per run")
    parser.add_argument("--postgres", metavar="SERVER_URL", default=None, help="passed on to storm")
    parser.add_argument("--only", choices=("storm", "lifecycle"), default=None, help="one scenario only")
    parser.add_argument(
        "--lead-cost",
        type=float,
        default=LEAD_COST_S,
        help="seconds per registration for the first storm's --lead (later ones: the last storm's)",
    )
    parser.add_argument(
        "--scale-out-up-to",
        type=int,
        default=None,
        metavar="N",
        help="storms with more than one worker per queue only up to this N (default: every N)",
    )
    parser.add_argument("--reuse", action="store_true", help="read sub-reports an earlier run left")
    parser.add_argument("--report-dir", type=Path, default=REPORTS, help="where scale.json is written")
    args = parser.parse_args()
    sizes = sorted({int(n) for n in args.sizes.split(",")})
    workers = sorted({int(k) for k in args.workers.split(",")})
    runs = args.report_dir / "scale-runs"
    runs.mkdir(parents=True, exist_ok=True)

    lifecycles: list[dict[str, Any]] = []
    if args.only != "storm":
        for k in workers:
            path = runs / f"lifecycle-r{args.lifecycle_registrations}-k{k}.json"
            options = ["--registrations", str(args.lifecycle_registrations)]
            options += ["--workflow-workers", str(k), "--activity-workers", str(k), "--report", str(path)]
            lifecycles.append(lifecycle_row(k, sub_run("lifecycle", options, path, args.reuse)))

    storms: list[dict[str, Any]] = []
    cost = args.lead_cost
    if args.only != "lifecycle":
        database = "postgresql" if args.postgres else "sqlite"
        for n in sizes:  # smallest first: each storm's cost per registration sets the next one's lead
            for k in workers:
                if k > 1 and args.scale_out_up_to is not None and n > args.scale_out_up_to:
                    continue  # one worker process per queue only: the largest storms take long
                directory = runs / f"storm-{database}-n{n}-k{k}"
                lead = storm_lead(n, cost)
                options = ["--registrations", str(n), "--lead", str(lead), "--report-dir", str(directory)]
                options += ["--workflow-workers", str(k), "--activity-workers", str(k)]
                options += ["--postgres", args.postgres] if args.postgres else []
                row = storm_row(n, k, sub_run("storm", options, directory / "storm.json", args.reuse))
                storms.append(row)
                if measured(row.get("s_per_reg")):
                    cost = max(float(row["s_per_reg"]), 0.01)

    projection = Projection(lifecycles, storms)
    report = LifecycleReport(
        "scale",
        {
            "sizes": sizes,
            "workers": workers,
            "lifecycle_registrations": args.lifecycle_registrations,
            "database": "postgresql" if args.postgres else "sqlite",
            "target": TARGET,
            "unpaid_share": UNPAID_SHARE,
            "storm_lead": f"{STACK_START_S:.0f} s + N × {LEAD_MARGIN} × the last storm's s/registration"
            f" (first: {args.lead_cost})",
        },
        figures=projection.figures,
        rows=storms,
        notes=projection.notes,
    )
    report.tables = {"lifecycle by workers per queue (K)": lifecycles, "projection": projection.rows}
    report.print()
    path = report.write(args.report_dir)
    print(f"   report: {path} (sub-reports: {runs})")
    failed = [r for r in lifecycles + storms if "failed" in r.values()]
    if failed:
        sys.exit(f"{len(failed)} sub-run(s) failed: {failed}")


if __name__ == "__main__":
    main()

"""What every scenario of ``./expo bench`` is built from: the embedded stack on free ports (with more
worker processes if asked), latency percentiles, resident memory, and the report (a printed table and
a JSON file under ``var/bench/``).

Benchmarks are not tests: they assert nothing about speed, they measure and print.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy.local.stack import DEFAULT_PORTS, Stack, free_ports

REPORTS = Path("var/bench")
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def bench_stack(
    *,
    workflow_workers: int = 1,
    activity_workers: int = 1,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """The whole embedded stack (``./expo start``'s) on free 127.0.0.1 ports in a temporary directory,
    with ``workflow_workers`` workflow worker processes and ``activity_workers`` processes of each
    service's activity worker; stopped (and its directory removed) at the end."""
    with tempfile.TemporaryDirectory(prefix="expo-bench-") as tmp:
        stack = Stack(
            Path(tmp), free_ports(list(DEFAULT_PORTS)), database_url=database_url, extra_env=extra_env
        )
        stack.start()
        try:
            names = [p.name for p in stack.processes if p.name.endswith("-worker")]
            for name in names:
                wanted = workflow_workers if name == "workflow-worker" else activity_workers
                for copy in range(2, wanted + 1):
                    stack.add_worker(name, copy)
            yield stack
        finally:
            stack.stop()


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """The stack a scenario runs on: worker processes per queue, and the database."""
    parser.add_argument("--workflow-workers", type=int, default=1, help="workflow worker processes")
    parser.add_argument("--activity-workers", type=int, default=1, help="processes of each activity worker")
    parser.add_argument("--database-url", default=None, help="default: the stack's SQLite files")


@contextmanager
def stack_for(args: argparse.Namespace, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """``bench_stack`` as ``add_stack_options`` asked for it."""
    with bench_stack(
        workflow_workers=args.workflow_workers,
        activity_workers=args.activity_workers,
        database_url=args.database_url,
        extra_env=extra_env,
    ) as stack:
        yield stack


def percentile(values: Sequence[float], share: float) -> float:
    """The value below which ``share`` of ``values`` lie (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency_figures(seconds: Sequence[float], prefix: str = "") -> dict[str, float]:
    """p50, p95, p99 and max in milliseconds."""
    return {
        f"{prefix}p50_ms": round(percentile(seconds, 0.50) * 1000, 1),
        f"{prefix}p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
        f"{prefix}p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
        f"{prefix}max_ms": round(max(seconds, default=0.0) * 1000, 1),
    }


def rss_mib(pid: int) -> float:
    """A process's resident memory (VmRSS), in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def stack_memory(stack: Stack) -> dict[str, float]:
    """Resident memory of each of the stack's processes, in MiB, by process name."""
    return {p.name: rss_mib(p.popen.pid) for p in stack.processes if p.popen and p.popen.poll() is None}


class Stopwatch:
    """Seconds since it was made (``elapsed``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


@dataclass
class Report:
    """One scenario's run: its parameters, its headline figures, and rows for a table."""

    scenario: str
    parameters: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def print(self) -> None:
        params = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        print(f"\n== {self.scenario} ({params})")
        for name, value in self.figures.items():
            print(f"   {name:<36} {value}")
        if self.rows:
            print(table(self.rows))
        for note in self.notes:
            print(f"   note: {note}")

    def write(self, directory: Path = REPORTS) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.scenario}.json"
        body = {
            "scenario": self.scenario,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "parameters": self.parameters,
            "figures": self.figures,
            "rows": self.rows,
            "notes": self.notes,
        }
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        return path


def table(rows: list[dict[str, Any]]) -> str:
    """Rows (dicts with the same keys) as an aligned text table."""
    columns = list(rows[0])
    cells = [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(r[i]) for r in cells)) for i, column in enumerate(columns)]
    lines = ["   " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("   " + "  ".join("-" * w for w in widths))
    lines += ["   " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)

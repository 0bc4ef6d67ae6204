"""The benchmark command still runs (``./expo bench``): one scenario at a tiny size, end to end on its
own stack, writes a report of the expected shape. Speed is not asserted here: benchmarks measure it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.stack
def test_the_burst_benchmark_runs_at_a_tiny_size_and_writes_its_report(tmp_path: Path) -> None:
    command = ["bench", "burst", "--clients", "1,2", "--registrations", "4", "--report-dir", str(tmp_path)]
    run = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads((tmp_path / "burst.json").read_text())
    assert report["scenario"] == "burst" and report["machine"]["cpus"]
    levels = {row["C"]: row for row in report["rows"]}
    assert set(levels) == {1, 2}, report["rows"]
    assert all(row["accepted"] == 4 and row["errors"] == "-" for row in levels.values()), report["rows"]

"""Benchmarks, separate from the tests: each prints its figures and writes a JSON report.

./expo bench gate [options]     gate verification latency and throughput (bench/gate.py)
./expo bench storm [options]    the deadline storm and memory with N open registrations (bench/storm.py)
./expo bench lifecycle [options] raw limit (skeleton) vs full lifecycle, and their ratio (bench/lifecycle.py)
./expo bench burst [options]    registration burst: reg/s and latency at C clients (bench/burst.py)
./expo bench decisions [options] approval round trip, idle and under a burst (bench/decisions.py)
./expo bench scale [options]    storm and lifecycle by N and workers, projected to 410,000 (bench/scale.py)
"""

from __future__ import annotations

import sys

from bench import burst, decisions, gate, lifecycle, scale, storm

SCENARIOS = {
    "gate": gate.main,
    "storm": storm.main,
    "lifecycle": lifecycle.main,
    "burst": burst.main,
    "decisions": decisions.main,
    "scale": scale.main,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    name = sys.argv.pop(1)
    sys.argv[0] = f"expo bench {name}"
    SCENARIOS[name]()


if __name__ == "__main__":
    main()

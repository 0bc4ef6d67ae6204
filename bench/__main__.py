"""Benchmarks, separate from the tests: each prints its figures and writes a JSON report.

./expo bench gate [options]     gate verification latency and throughput (bench/gate.py)
"""

from __future__ import annotations

import sys

from bench import gate

SCENARIOS = {"gate": gate.main}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    name = sys.argv.pop(1)
    sys.argv[0] = f"expo bench {name}"
    SCENARIOS[name]()


if __name__ == "__main__":
    main()

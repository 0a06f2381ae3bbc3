"""`python -m tests.chaos --seed N --duration S [--store postgresql|sqlite] [--plant skip-inbox]`:
a randomized fault schedule under mixed load, checked against a model. Exit 0 on PASS, 1 on FAIL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.chaos.planted import BUGS
from tests.chaos.runner import Options, execute


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="fixes the workload and the fault schedule")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load and faults (then catch-up)")
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--plant", choices=sorted(BUGS), default="",
                        help="plant a bug in the client directory (the checker must then say FAIL)")
    parser.add_argument("--firms", type=int, default=6)
    parser.add_argument("--rate", type=float, default=15.0, help="platform events per second")
    parser.add_argument("--folder", type=Path, default=None, help="where logs, history and report go")
    args = parser.parse_args(argv)
    verdict = execute(Options(seed=args.seed, duration=args.duration, store=args.store, planted=args.plant,
                              firms=args.firms, rate=args.rate, folder=args.folder))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())

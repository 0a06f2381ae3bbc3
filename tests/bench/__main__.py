"""`make bench`: measure the hot paths beside this machine's own limits and write the table
into docs/BENCHMARKS.md. Asserts nothing about time.

    python -m tests.bench                 # everything, full sizes (about 9 minutes on 2 cores)
    python -m tests.bench --smoke         # tiny sizes: the harness works (tests/test_bench_smoke.py)
    python -m tests.bench --only 1,3      # some benchmarks (1 ingest, 2 rebuild, 3 queries,
                                          # 4 freshness, 5 digest; 6 memory comes with any;
                                          # 7 CSV export comes with 3; 8 tracing off)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.common import PG_DSN, ROOT, SECRET, Report, Row, Sizes, Stores, broker, postgres_available

BEGIN = "<!-- bench:results:begin (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:results:end -->"
MEMORY_LIMIT_MB = 250.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, measures nothing")
    parser.add_argument("--only", default="1,2,3,4,5,8", help="comma-separated benchmark numbers (default: all)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md",
                        help="the Markdown file whose results block is replaced")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--keep", action="store_true", help="keep the stores and logs (printed at the end)")
    return parser.parse_args(argv)


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = Sizes.smoke() if args.smoke else Sizes.full()
    only = {int(x) for x in args.only.split(",") if x.strip()}
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    pg = None if args.no_postgres or not postgres_available(PG_DSN) else PG_DSN
    kinds = ["sqlite", "postgresql"] if pg else ["sqlite"]
    stores = Stores(folder, pg)
    report = Report()
    memory: dict[str, float] = {}
    started, at_start = time.perf_counter(), machine()
    print(f"bench: {'smoke' if args.smoke else 'full'} sizes, stores {', '.join(kinds)}; work files in {folder}")
    if not pg and not args.no_postgres:
        report.notes.append(f"PostgreSQL was not reachable at {PG_DSN}: SQLite only.")
    try:
        run(args, sizes, only, kinds, stores, folder, report, memory)
    finally:
        try:
            stores.close()
        except Exception as error:  # e.g. PostgreSQL restarted meanwhile by another test suite
            print(f"bench: could not drop the PostgreSQL databases: {error}", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    for name, peak in memory.items():
        report.add(Row("6 memory", f"peak RSS: {name}", peak, "MB", "", None, f"<= {MEMORY_LIMIT_MB:.0f} MB",
                       peak <= MEMORY_LIMIT_MB))
    seconds = time.perf_counter() - started
    command = "python -m tests.bench" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    block = render(report, sizes, command, at_start, machine(), seconds, kinds)
    print()
    print(block)
    if not args.no_write:
        write(args.out, block)
        print(f"\nwritten to {args.out}")
    if args.keep:
        print(f"work files kept in {folder}")
    return 0


def run(args: argparse.Namespace, sizes: Sizes, only: set[int], kinds: list[str], stores: Stores, folder: Path,
        report: Report, memory: dict[str, float]) -> None:
    for section in (1, 2, 4, 5, 8):
        if section in only or (section == 2 and 3 in only):
            try:
                run_section(section, sizes, only, kinds, stores, folder, report, memory)
            except Exception as error:
                # A long run goes on: the table says what failed (the smoke run fails outright).
                if args.smoke:
                    raise
                print(f"bench: section {section} failed: {error!r}", file=sys.stderr, flush=True)
                report.notes.append(f"benchmark {section} failed in this run: {type(error).__name__}: {error}")


def run_section(section: int, sizes: Sizes, only: set[int], kinds: list[str], stores: Stores, folder: Path,
                report: Report, memory: dict[str, float]) -> None:
    if section == 1:
        from tests.bench.ingest import bench_ingest

        for kind in kinds:
            print(f"1 ingest on {kind}", flush=True)
            bench_ingest(report, stores, folder, kind, sizes.ingest(kind), sizes.append_events, memory)
    if section == 2:  # and 3: the queries read the read model the rebuild builds
        from tests.bench.export import bench_export
        from tests.bench.queries import bench_queries
        from tests.bench.rebuild import bench_rebuild, make_store

        for kind in kinds:
            print(f"2/3 rebuild and queries on {kind}: writing the store", flush=True)
            url = stores.new(kind, "directory")
            clients, largest = sizes.clients(kind)
            population = make_store(url, clients, largest)
            report.notes.append(f"{kind}: store of {population.events:,} events ({population.clients:,} clients, "
                                f"{largest:,} in the largest firm) written in {population.seconds:.0f}s "
                                f"({population.events / population.seconds:,.0f} events/s through the application)")
            # Queries read the read model the rebuild builds: 3 runs 2 as well.
            bench_rebuild(report, url, kind, population, "127.0.0.1:1", folder, memory)
            if 3 in only:
                bench_queries(report, url, kind, population, SECRET, folder, memory, sizes.query_requests,
                              sizes.query_concurrent_seconds)
                # 7, the CSV export, reads the same read model (the largest firm's tabs).
                bench_export(report, url, kind, population, folder, memory)
    if section == 4:
        from tests.bench.freshness import bench_freshness

        print("4 freshness", flush=True)
        with broker(folder) as running:
            bench_freshness(report, running.bootstrap, stores.new("sqlite", "fresh"), folder, memory,
                            sizes.freshness_rate, sizes.freshness_seconds)
    if section == 5:
        from tests.bench.digest import bench_digest

        print("5 digest", flush=True)
        bench_digest(report, stores.new("sqlite", "notifier"), folder, memory, sizes.digest_recipients)
    if section == 8:
        from tests.bench.tracing_cost import bench_tracing

        print("8 tracing off", flush=True)
        bench_tracing(report, 1_000 if sizes == Sizes.smoke() else 20_000)


def render(report: Report, sizes: Sizes, command: str, at_start: str, at_end: str, seconds: float,
           kinds: list[str]) -> str:
    lines = [
        BEGIN,
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `{command}`, {seconds / 60:.1f} min; stores: {', '.join(kinds)}.",
        f"Machine at start: {at_start}; at the end: {at_end}.",
        "",
        report.table(),
        "",
    ]
    notes = list(dict.fromkeys([f"- {r.section}, {r.figure}: {r.note}" for r in report.rows if r.note]
                               + [f"- {n}" for n in report.notes]))
    if notes:
        lines += ["Notes:", "", *notes, ""]
    lines.append(f"Sizes: `{sizes}`")
    lines.append(END)
    return "\n".join(lines)


def write(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())

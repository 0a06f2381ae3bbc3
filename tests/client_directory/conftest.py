from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client_directory.support import Directory


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    made = Directory(str(tmp_path / "client_directory.db"))
    yield made
    made.app.close()

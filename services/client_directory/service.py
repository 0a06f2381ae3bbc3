"""The names older callers import (tests/harness.py); the composition root is bootstrap.py."""

from __future__ import annotations

from services.client_directory.bootstrap import CONSUMES, ClientDirectoryService, build

__all__ = ["CONSUMES", "ClientDirectoryService", "build"]

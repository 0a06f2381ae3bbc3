"""Each service's domain is plain Python: importing it loads no Kafka, HTTP, database or
metrics module (checked in a fresh interpreter, so nothing imported by other tests counts)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

INFRASTRUCTURE = ("aiokafka", "kafka", "faststream", "fastapi", "starlette", "uvicorn", "httpx", "psycopg",
                  "psycopg_pool", "sqlite3", "prometheus_client", "aiosmtplib", "jinja2", "events",
                  "eventsourcing.application", "eventsourcing.persistence", "eventsourcing.postgres",
                  "eventsourcing.sqlite")
DOMAINS = ("services.client_directory.domain", "services.notifier.domain")


@pytest.mark.parametrize("package", DOMAINS)
def test_a_service_domain_imports_no_infrastructure(package: str) -> None:
    probe = (
        "import importlib, json, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.iter_modules(pkg.__path__):\n"
        "    importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                       text=True).stdout)
    leaked = sorted(name for name in loaded if any(name == bad or name.startswith(bad + ".")
                                                   for bad in INFRASTRUCTURE))
    assert leaked == [], f"{package} loads infrastructure: {leaked}"

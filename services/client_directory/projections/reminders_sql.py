"""The reminder history's SQL, common to both databases and written with each one's parameter
mark (`ReminderSQL` is SQLite's, `PostgresReminderSQL` PostgreSQL's): the tables, one statement
per kind of row change the fold gives (projections/reminders.py), and the API's query."""

from __future__ import annotations

from typing import Any

from events.dialect import Cursor


class ReminderSQL:
    mark = "?"
    position_type = "INTEGER"

    def __init__(self) -> None:
        m, position = self.mark, self.position_type
        self.schema = [
            f"""CREATE TABLE IF NOT EXISTS rm_reminders (
            partner_id TEXT NOT NULL, reminder_id TEXT NOT NULL, client_id TEXT NOT NULL,
            requested_by TEXT NOT NULL, requested_at TEXT NOT NULL, tasks TEXT NOT NULL,
            comment TEXT NOT NULL, position {position} NOT NULL,
            PRIMARY KEY (partner_id, reminder_id))""",
            # A client's history newest first is one index range.
            "CREATE INDEX IF NOT EXISTS rm_reminders_client ON rm_reminders (partner_id, client_id, position)",
            f"""CREATE TABLE IF NOT EXISTS rm_emails (
            email_id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, reminder_id TEXT NOT NULL,
            user_id TEXT NOT NULL, status TEXT NOT NULL, at TEXT, position {position} NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS rm_emails_reminder ON rm_emails (partner_id, reminder_id, position)",
        ]
        self.changes = {
            "reminder": "INSERT INTO rm_reminders (partner_id, reminder_id, client_id, requested_by, requested_at, "
                        f"tasks, comment, position) VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}) "
                        "ON CONFLICT DO NOTHING",
            "email": "INSERT INTO rm_emails (email_id, partner_id, reminder_id, user_id, status, at, position) "
                     f"VALUES ({m}, {m}, {m}, {m}, 'pending', NULL, {m}) ON CONFLICT DO NOTHING",
            "settled": f"UPDATE rm_emails SET status = {m}, at = {m} WHERE email_id = {m}",
        }
        self.reminders = (f"SELECT reminder_id, requested_by, requested_at, tasks, comment FROM rm_reminders "
                          f"WHERE partner_id = {m} AND client_id = {m} ORDER BY position DESC LIMIT {m}")
        self.emails_of = ("SELECT reminder_id, user_id, status, at FROM rm_emails "
                          f"WHERE partner_id = {m} AND reminder_id = {m} ORDER BY position")

    def write(self, c: Cursor, change: tuple[str, tuple[Any, ...]]) -> None:
        kind, params = change
        c.execute(self.changes[kind], params)


class PostgresReminderSQL(ReminderSQL):
    mark = "%s"
    position_type = "BIGINT"


DIALECTS: dict[str, type[ReminderSQL]] = {"sqlite": ReminderSQL, "postgresql": PostgresReminderSQL}

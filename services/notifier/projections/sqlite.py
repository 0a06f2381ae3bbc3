"""The schedule index on SQLite (the statements are in projections/sql.py)."""

from __future__ import annotations

from services.notifier.projections.sql import ScheduleSQL


class SQLiteScheduleSQL(ScheduleSQL):
    mark = "?"

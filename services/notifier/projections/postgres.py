"""The schedule index on PostgreSQL (the statements are in projections/sql.py)."""

from __future__ import annotations

from services.notifier.projections.sql import ScheduleSQL


class PostgresScheduleSQL(ScheduleSQL):
    mark = "%s"

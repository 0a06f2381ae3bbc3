"""`projections rebuild`: replay the event store into fresh tables, then switch over atomically.

The live tables keep serving until the switch. The fresh tables and their position survive a
kill, so running the command again resumes where it stopped. Nothing is published or sent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from eventsourcing.persistence import Notification
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from events.dialect import Cursor
from events.store import ReadModel
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.config import Settings
from services.client_directory.projections.clients import ClientsProjection
from services.client_directory.projections.queries import clients_sql
from services.client_directory.projections.sql import TABLES

PREFIX = "rebuild_"
LIVE = ClientsProjection.name


def rebuild_read_model(directory: ClientDirectory, read_model: ReadModel, *,
                       show_progress: bool = True, stop_after: int | None = None,
                       batch_size: int = 2000) -> int:
    """Returns how many notifications the fresh tables were built from."""
    fresh = ClientsProjection(directory, read_model, prefix=PREFIX, query_indexes=False, bulk=True)
    head = directory.recorder.max_notification_id() or 0
    # Where the server works apart from this process (PostgreSQL), the next batch is read on
    # another connection while this one is applied. A batch's position is still recorded with
    # its rows, and one the position covers already is skipped (write_after).
    read_ahead = read_model.dialect.reads_ahead

    def read_after(position: int) -> Sequence[Notification]:
        # From the position this loop reached (it recorded it), not re-read from the store.
        return directory.recorder.select_notifications(start=position, limit=batch_size, topics=fresh.topics,
                                                       inclusive_of_start=False)

    done = fresh.position()
    started = time.monotonic()
    with Progress(
        TextColumn("rebuilding read models"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10} ev/s"), TimeRemainingColumn(),
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("rebuild", total=head, completed=done, rate="-")
        with ThreadPoolExecutor(1, thread_name_prefix="rebuild-read") as reader:
            batch = read_after(done)
            while batch:
                done = batch[-1].id
                following = reader.submit(read_after, done) if read_ahead else None
                fresh.process(batch, done)
                elapsed = max(time.monotonic() - started, 1e-6)
                progress.update(task, completed=done, total=max(head, done),
                                rate=f"{done / elapsed:,.0f}")
                if stop_after is not None and done >= stop_after:
                    return done
                batch = following.result() if following else read_after(done)
    switch_over(read_model, fresh.name, done)
    return done


def switch_over(read_model: ReadModel, fresh_tracking: str, position: int) -> None:
    """One transaction: drop the live tables, rename the fresh ones, move the position."""
    live, fresh = clients_sql(read_model.kind), clients_sql(read_model.kind, PREFIX)

    def swap(c: Cursor) -> None:
        live.switch_over(c, fresh, read_model.tracking_table, (fresh_tracking, LIVE), position)

    read_model.write(swap)
    read_model.settle(TABLES)


def rebuild(settings: Settings) -> int:
    directory = ClientDirectory(settings.store)
    read_model = ReadModel(directory)
    count = rebuild_read_model(directory, read_model)
    print(f"client_directory: read models rebuilt from {count} events and switched over")
    return 0

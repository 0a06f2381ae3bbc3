"""A process that relays client_directory's outbox to Kafka; with --die-after-batches N it
SIGKILLs itself after the broker acknowledged its N-th batch and before saving the position:
the worst moment for an outbox relay. Used by test_outbox_relay_kills only."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

from eventsourcing.persistence import Notification

from events.config import KafkaSettings, StoreUrl
from events.kafka import make_broker
from events.outbox import OutboxRelay
from services.client_directory.application.directory import ClientDirectory


async def main(store: str, bootstrap: str, die_after: int, batch_size: int) -> None:
    directory = ClientDirectory(StoreUrl.parse("store", store))
    broker = make_broker(KafkaSettings(bootstrap), client_id="relay-worker")
    await broker.start()
    relay = OutboxRelay(directory, broker, loop=asyncio.get_running_loop())
    relay.batch_size = batch_size
    batches = 0
    publish = relay.publish

    async def publish_then_maybe_die(notifications: Sequence[Notification]) -> None:
        nonlocal batches
        await publish(notifications)  # returns when the broker has acknowledged every record
        batches += 1
        if die_after and batches >= die_after:
            os.kill(os.getpid(), signal.SIGKILL)

    relay.publish = publish_then_maybe_die  # type: ignore[method-assign]
    await asyncio.to_thread(relay.catch_up)
    await broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--die-after-batches", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.store, args.bootstrap, args.die_after_batches, args.batch_size))

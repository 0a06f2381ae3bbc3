"""A store that stays unavailable for a fetch spanning partitions: every partition of the
fetch is fetched again; nothing is skipped."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from events.kafka import PartitionBatch
from tests.conftest import Publish, unique
from tests.harness import auth, client_directory, eventually

pytestmark = pytest.mark.integration


async def test_a_batch_whose_store_write_keeps_failing_is_fetched_again_whole(broker, stores, publish: Publish) -> None:
    firm, admin = unique("firm"), unique("admin")
    async with client_directory(broker.bootstrap, stores.new("sqlite")) as (service, api):
        consumer = service.consumer
        consumer.retry_attempts, consumer.retry_delay = 2, 0.01
        apply = consumer.sink.apply_batches
        failures = {"left": 0, "seen": 0}

        def flaky(batches: list[PartitionBatch]) -> Any:
            # The first fetches holding the clients topic fail longer than the retries.
            if any(b.topic == "platform.partner-clients" for b in batches) and failures["left"] > 0:
                failures["left"] -= 1
                failures["seen"] += 1
                raise OperationalError("database is restarting")
            return apply(batches)

        publish("platform.partner-members", "partner.member.added.v1", firm,
                {"user_id": admin, "email": f"{admin}@firm.test", "name": "Ada", "role": "admin", "locale": "en"})

        async def member_known() -> bool:
            return (await api.get("/v1/clients", params={"tab": "all"}, headers=auth(admin, firm, "admin"))
                    ).status_code == 200 and bool(service.queries.member(firm, admin))

        await eventually(member_known)
        consumer.sink.apply_batches = flaky  # type: ignore[method-assign,assignment]
        failures["left"] = 5
        for n in range(60):  # spread over every partition, sent at once: batches span partitions
            publish("platform.partner-clients", "client.partner_invited.v1", firm,
                    {"client_id": f"c-{n}", "client_name": f"Client {n}"}, flush=False)
        publish("platform.partner-members", "partner.member.role_changed.v1", firm,
                {"user_id": admin, "role": "admin"}, flush=True)

        async def all_invited() -> bool:
            page = (await api.get("/v1/clients", params={"tab": "invitations", "limit": 200},
                                  headers=auth(admin, firm, "admin"))).json()
            return len(page["items"]) == 60

        await eventually(all_invited, timeout=60)
        assert failures["seen"] == 5

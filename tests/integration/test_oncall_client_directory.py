"""On-call commands of the client directory on real data: dead letters listed and redriven
once, a replay that changes nothing, a history with rejected events and their reasons, and a
rebuild killed halfway then resumed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from events.store import ReadModel
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.rebuild import rebuild_read_model
from tests.conftest import Publish, unique
from tests.harness import auth, client_directory, eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(bootstrap: str, store: str, *args: str, group: str = "client-directory") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CLIENT_DIRECTORY_DB": store, "COLUMNS": "200",
           "CLIENT_DIRECTORY_GROUP_ID": group}
    result = subprocess.run([sys.executable, "-m", "services.client_directory", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


async def test_on_call_can_see_dead_letters_histories_and_replay_without_changing_anything(
    broker, stores, publish: Publish, producer
) -> None:
    firm, admin = unique("firm"), unique("admin")
    store = stores.new("sqlite")
    poison_key = unique("poison")
    group = unique("client-directory")  # the CLI redrives what this service's group dead-lettered
    async with client_directory(broker.bootstrap, store, group_id=group) as (service, api):
        publish("platform.partner-members", "partner.member.added.v1", firm,
                {"user_id": admin, "email": f"{admin}@firm.test", "name": "Ada", "role": "admin", "locale": "en"})
        publish("platform.partner-clients", "client.onboarding_started.v1", firm,
                {"client_id": "c-1", "client_name": "Acme", "invited_by": admin})
        publish("platform.partner-clients", "client.verification_completed.v1", firm, {"client_id": "c-404"})
        producer.send("platform.partner-clients", key=poison_key.encode(), value=b"{oops")
        producer.flush()
        publish("platform.partner-clients", "client.verification_completed.v1", firm, {"client_id": "c-1"})

        async def connected() -> bool:
            # 403 until the admin's membership is applied: their current role decides.
            response = await api.get("/v1/clients", params={"tab": "all"}, headers=auth(admin, firm, "admin"))
            return response.status_code == 200 and bool(response.json()["items"])

        await eventually(connected)
        head = service.directory.recorder.max_notification_id()

    listed = cli(broker.bootstrap, store, "dlq", "list", "--topic", "platform.partner-clients").stdout
    assert poison_key in listed and "JSONDecodeError" in listed

    history = json.loads(cli(broker.bootstrap, store, "events", "show", "--client", "c-404", "--partner", firm,
                             "--json").stdout)
    [rejected] = history["inbound_events"]
    assert rejected["outcome"] == "rejected" and "never invited or onboarded" in rejected["reason"]
    assert history["stored_events"] == {}
    history = json.loads(cli(broker.bootstrap, store, "events", "show", "--client", "c-1", "--partner", firm,
                             "--json").stdout)
    assert [e["type"] for e in history["inbound_events"]] == [
        "client.onboarding_started.v1", "client.verification_completed.v1"]
    [relationship] = history["stored_events"].values()
    assert [e["event"] for e in relationship] == ["ClientRelationship.Started",
                                                 "ClientRelationship.VerificationCompleted"]
    assert "Acme" in cli(broker.bootstrap, store, "events", "show", "--client", "c-1").stdout

    replayed = cli(broker.bootstrap, store, "topics", "replay", "--topic", "platform.partner-members",
                   "--partition", "0", "--from-offset", "0").stdout
    assert "0 applied" in replayed
    for partition in ("1", "2"):
        cli(broker.bootstrap, store, "topics", "replay", "--topic", "platform.partner-members",
            "--partition", partition, "--from-offset", "0")
    assert ClientDirectory(service.settings.store).recorder.max_notification_id() == head

    first = cli(broker.bootstrap, store, "dlq", "redrive", "--topic", "platform.partner-clients", group=group).stdout
    assert "redriven" in first and " 0 dead letters" not in first
    again = cli(broker.bootstrap, store, "dlq", "redrive", "--topic", "platform.partner-clients", group=group).stdout
    assert "redriven 0 dead letters" in again


async def test_a_rebuild_killed_halfway_resumes_and_switches_over_to_the_same_tabs(
    broker, stores, store_kind: str, publish: Publish
) -> None:
    firm, admin = unique("firm"), unique("admin")
    store = stores.new(store_kind)
    async with client_directory(broker.bootstrap, store) as (service, api):
        publish("platform.partner-members", "partner.member.added.v1", firm,
                {"user_id": admin, "email": f"{admin}@firm.test", "name": "Ada", "role": "admin", "locale": "en"})
        for n in range(40):
            publish("platform.partner-clients", "client.partner_invited.v1", firm,
                    {"client_id": f"c-{n}", "client_name": f"Client {n}"}, flush=False)
        publish("platform.partner-clients", "client.renamed.v1", firm, {"client_id": "c-7", "client_name": "Zeta"})

        async def all_there() -> bool:
            response = await api.get("/v1/clients", params={"tab": "invitations", "limit": 200},
                                     headers=auth(admin, firm, "admin"))
            page = response.json() if response.status_code == 200 else {"items": []}  # 403: not applied yet
            return len(page["items"]) == 40 and any(i["name"] == "Zeta" for i in page["items"])

        await eventually(all_there)
        before = (await api.get("/v1/clients", params={"tab": "invitations", "limit": 200},
                                headers=auth(admin, firm, "admin"))).json()

    directory = ClientDirectory(service.settings.store)
    read_model = ReadModel(directory)
    halfway = (directory.recorder.max_notification_id() or 0) // 2
    built = await asyncio.to_thread(rebuild_read_model, directory, read_model, show_progress=False,
                                    stop_after=halfway, batch_size=10)
    assert 0 < built < (directory.recorder.max_notification_id() or 0)
    # The live tables still serve while the fresh ones are half built.
    live = read_model.query(f"SELECT COUNT(*) AS n FROM cd_clients WHERE partner_id = {read_model.mark}", (firm,))
    assert live[0]["n"] == 40
    finished = await asyncio.to_thread(rebuild_read_model, directory, read_model, show_progress=False)
    assert finished == directory.recorder.max_notification_id()

    async with client_directory(broker.bootstrap, store) as (_, api):
        after = (await api.get("/v1/clients", params={"tab": "invitations", "limit": 200},
                               headers=auth(admin, firm, "admin"))).json()
    assert after == before
    assert [item["name"] for item in after["items"]][-1] == "Zeta"

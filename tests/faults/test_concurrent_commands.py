"""Twenty commands at once on one client through the API: no update is lost, the client's
history has no version gap, and a conflict is retried or answered 409, never a 5xx."""

from __future__ import annotations

import asyncio

import pytest

from services.client_directory.domain.model import client_key
from tests.conftest import Publish, unique
from tests.harness import auth, client_directory, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


async def test_twenty_concurrent_assignments_on_one_client_all_land(broker, stores, store_kind: str,
                                                                    publish: Publish) -> None:
    firm, admin = unique("firm"), unique("admin")
    accountants = [unique("acc") for _ in range(20)]
    async with client_directory(broker.bootstrap, stores.new(store_kind)) as (service, api):
        publish("platform.partner-members", "partner.member.added.v1", firm,
                {"user_id": admin, "email": f"{admin}@firm.test", "name": "Ada", "role": "admin", "locale": "en"})
        for user in accountants:
            publish("platform.partner-members", "partner.member.added.v1", firm,
                    {"user_id": user, "email": f"{user}@firm.test", "name": user, "role": "accountant",
                     "locale": "en"}, flush=False)
        publish("platform.partner-clients", "client.onboarding_started.v1", firm,
                {"client_id": "c-1", "client_name": "Busy Client", "invited_by": admin})
        headers = auth(admin, firm, "admin")

        async def ready() -> bool:
            response = await api.get("/v1/clients/c-1", headers=headers)
            members = service.read_model.query(
                f"SELECT COUNT(*) AS n FROM cd_members WHERE partner_id = {service.read_model.mark}", (firm,))
            return response.status_code == 200 and members[0]["n"] == 21

        await eventually(ready)
        responses = await asyncio.gather(*(api.put(f"/v1/clients/c-1/accountants/{user}", headers=headers)
                                           for user in accountants))
        statuses = sorted(r.status_code for r in responses)
        assert all(code in (200, 409) for code in statuses), statuses
        retried = [user for user, r in zip(accountants, responses, strict=True) if r.status_code == 409]
        for user in retried:  # a 409 asks the caller to try again: it then lands
            assert (await api.put(f"/v1/clients/c-1/accountants/{user}", headers=headers)).status_code == 200

        details = (await api.get("/v1/clients/c-1", headers=headers)).json()
        assert sorted(a["user_id"] for a in details["accountants"]) == sorted(accountants)
        history = list(service.directory.recorder.select_events(client_key(firm, "c-1")))
        versions = [e.originator_version for e in history]
        assert versions == list(range(1, len(versions) + 1)), "a version gap"
        assert len(versions) == 1 + len(accountants)
        print(f"\n20 concurrent assignments: statuses {dict((c, statuses.count(c)) for c in set(statuses))}, "
              f"{len(retried)} retried by the caller, versions 1..{versions[-1]} without gap")

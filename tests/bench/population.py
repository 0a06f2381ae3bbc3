"""A client directory's event store written directly through the application (no Kafka, no
inbox): the fastest way to a store of a million events. The rebuild benchmark replays it
and the query benchmark reads the read model rebuilt from it.

About two events per client: every client starts (invited or onboarding), half are verified
(connected), a fifth get figures (created and updated), one in twenty is assigned to one of
its firm's accountants. One firm is large, a second a tenth of its size (a search that matches
nothing is timed in both); the rest have `FIRM_SIZE` clients each.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.client_directory.application.directory import ClientDirectory
from services.client_directory.domain.model import Assignments, ClientFigures, ClientRelationship, Member

FIRM_SIZE = 1000
ACCOUNTANTS = 3
BIG_FIRM = "firm-big"
MID_FIRM = "firm-mid"  # a tenth of the big firm
WORDS = ("Société", "Boulangerie", "Cabinet", "Garage", "Élodie", "Edgar", "Fabrice", "Atelier", "Pharmacie",
         "Café", "Œuvre", "Zoé", "Martin", "Dubois", "Lefèvre", "Nordic", "Ørsted", "Ålborg", "Hôtel", "Études")
SEARCH = "societe"  # matches about one name in ten of every tab
NO_MATCH = "xylophone"  # matches no name (none of its trigrams is in WORDS)


@dataclass
class Population:
    clients: int = 0
    events: int = 0
    seconds: float = 0.0
    firms: list[str] = field(default_factory=list)
    firm_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def big_admin(self) -> str:
        return f"{BIG_FIRM}-admin"

    @property
    def big_accountant(self) -> str:
        return f"{BIG_FIRM}-acc-0"

    @property
    def mid_admin(self) -> str:
        return f"{MID_FIRM}-admin"


def client_name(rng: random.Random, n: int) -> str:
    return f"{rng.choice(WORDS)} {rng.choice(WORDS)} {n}"


def populate(directory: ClientDirectory, clients: int, big_firm_clients: int, *, batch: int = 1000,
             seed: int = 7) -> Population:
    """Write `clients` client relationships (`big_firm_clients` of them in one firm)."""
    rng = random.Random(seed)
    result = Population()
    started = time.perf_counter()
    pending: list[Any] = []
    as_of = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

    def flush(force: bool = False) -> None:
        if pending and (force or len(pending) >= batch):
            directory.record(*pending)
            pending.clear()

    sizes = [min(big_firm_clients, clients), min(big_firm_clients // 10, max(clients - big_firm_clients, 0))]
    left = clients - sum(sizes)
    while left > 0:
        sizes.append(min(FIRM_SIZE, left))
        left -= sizes[-1]
    number = 0
    for f, size in enumerate(sizes):
        partner = BIG_FIRM if f == 0 else MID_FIRM if f == 1 else f"firm-{f:05d}"
        result.firms.append(partner)
        result.firm_sizes[partner] = size
        members = [Member.add(None, partner, f"{partner}-admin", f"admin@{partner}.test", "Ada Admin", "admin", "fr")]
        accountants = [f"{partner}-acc-{a}" for a in range(ACCOUNTANTS)]
        members += [Member.add(None, partner, user, f"{user}@{partner}.test", f"Chloé {user[-1]}", "accountant", "fr")
                    for user in accountants]
        pending.extend(members)
        indexes: dict[str, Assignments] = {}
        for _ in range(size):
            n = number
            number += 1
            client_id = f"{partner}-c{n:07d}"
            if n % 4 == 0:
                client = ClientRelationship.partner_invited(None, partner, client_id, client_name(rng, n))
            else:
                client = ClientRelationship.onboarding_started(None, partner, client_id, client_name(rng, n),
                                                               members[0].user_id)
                if n % 2 == 0 or n % 4 == 3:
                    client.complete_verification()
            if n % 40 in (3, 5):  # a connected and an onboarding client in forty
                user = accountants[n % ACCOUNTANTS]
                client.assign(user)
                index = indexes.get(user)
                if index is None:
                    index = indexes[user] = Assignments(partner_id=partner, user_id=user)
                index.note(client_id)
            pending.append(client)
            if n % 5 == 0:
                figures = ClientFigures(partner_id=partner, client_id=client_id)
                figures.update(f"{n % 9973}.50", "EUR", n % 7, n % 3, as_of + timedelta(seconds=n))
                pending.append(figures)
            flush()
        pending.extend(indexes.values())
        flush()
        result.clients += size
    flush(force=True)
    result.events = directory.recorder.max_notification_id() or 0
    result.seconds = time.perf_counter() - started
    return result

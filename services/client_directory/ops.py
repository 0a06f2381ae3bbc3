"""`events show`: a client's or member's full history for on-call, rejected events included."""

from __future__ import annotations

import json

from events.ops import aggregate_history, console, inbox_history, print_aggregate, print_history
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.domain.model import client_key, figures_key, member_key


def show(directory: ClientDirectory, *, client: str | None, member: str | None, partner: str | None,
         as_json: bool = False) -> int:
    subject = client or member
    assert subject is not None
    received = inbox_history(directory, subject=subject, partner=partner)
    partners = sorted({partner} if partner else {r["partner"] for r in received})
    if not received and not partners:
        console.print(f"nothing is known about {subject}")
        return 1
    stored: dict[str, list[dict[str, str]]] = {}
    for firm in partners:
        keys = [client_key(firm, subject), figures_key(firm, subject)] if client else [member_key(firm, subject)]
        for key in keys:
            rows = aggregate_history(directory, key)
            if not rows:
                continue
            stored[f"{firm}/{rows[0]['event'].split('.')[0]}"] = rows
            if as_json:
                continue
            print_aggregate(rows, f"{firm} / {subject}: {rows[0]['event'].split('.')[0]} ({len(rows)} events)")
    if as_json:
        print(json.dumps({"stored_events": stored, "inbound_events": received}, indent=2, ensure_ascii=False))
    else:
        print_history(received, f"inbound events about {subject} (applied and rejected)")
    return 0

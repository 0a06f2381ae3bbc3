"""`python -m services.notifier [serve]` runs the notifier; `digests run|preview`,
`deliveries`, `events show`, `dlq` and `topics replay` are the on-call commands (docs/RUNBOOK.md).
Configuration comes from the environment (services/notifier/config.py); every object comes
from services/notifier/bootstrap.py."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from events import ops
from events.config import ConfigError
from events.logs import configure
from events.runtime import Runtime, run, run_service
from services.notifier.application.digests import partners_of
from services.notifier.application.sender import SendReport, render
from services.notifier.bootstrap import CONSUMES, NotifierService, bootstrap
from services.notifier.config import Settings
from services.notifier.domain.schedule import ZONE
from services.notifier.ops import deliveries, show

EPILOG = textwrap.fill(f"environment: {', '.join(Settings.variables())} (see services/notifier/README.md).",
                       width=90, break_on_hyphens=False)


def instant(text: str) -> datetime:
    """An RFC 3339 timestamp with its offset, e.g. 2026-03-30T10:00:00+02:00 or ...Z."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset (add Z or +01:00)")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m services.notifier",
        description="The partner portal's notifier: email preferences, scheduled digests and reminders.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(dest="command", metavar="{serve,digests,deliveries,events,dlq,topics}")
    commands.add_parser("serve", help="run the service (the default)",
                        description="Consume, schedule, send, and serve health, metrics and unsubscribe. HTTP "
                        "answers at once; the store and the broker are waited for with backoff (/readyz says why).")
    add_digest_commands(commands)
    add_history_commands(commands)
    ops.add_commands(commands)
    return root


def add_digest_commands(commands: Any) -> None:
    digests = commands.add_parser("digests", help="run or preview the digest scheduler",
                                  description="On-call tools for the digest scheduler (no broker needed).")
    actions = digests.add_subparsers(dest="action", metavar="{run,preview}", required=True)
    run = actions.add_parser(
        "run", help="make the digests due at an instant, then send what is due",
        description="Runs the digest scheduler once as of --at: one digest per recipient for every "
        "preference due then and not covered yet (a rerun makes nothing twice), then sends every due "
        "email through the configured SMTP server, unless a running notifier holds the sender lock "
        "(it sends them). Exit status 1 when the SMTP server is unavailable (the emails stay due).",
    )
    run.add_argument("--at", type=instant, default=None, metavar="RFC3339",
                     help="the instant to run as of (default: now)")
    run.add_argument("--no-send", action="store_true", help="make the digests due, send nothing")
    run.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                     help="how long to wait for the sender lock (default: 5)")
    preview = actions.add_parser(
        "preview", help="print a member's next digest, sending and writing nothing",
        description="Prints the headers and text of the digest the member gets next (the one due at --at "
        "if one is, else the next one), with the clients left out and why.",
    )
    preview.add_argument("--user", required=True, help="the member's user_id")
    preview.add_argument("--partner", help="the firm's partner id (needed when the user is in several firms)")
    preview.add_argument("--at", type=instant, default=None, metavar="RFC3339",
                         help="look as of this instant (default: now)")


def add_history_commands(commands: Any) -> None:
    sent = commands.add_parser(
        "deliveries", help="what was sent to whom, when, and how it ended",
        description="Every email made for a member (--user) or naming a client (--client): its Message-ID, "
        "kind (digest or reminder), recipient, due time, state (due: not sent yet; sent; deferred: refused "
        "with a 4xx, retried later; failed: refused for good), SMTP attempts and the server's last answer; "
        "then the reminders about the client (or requested by the member) with their state, dropped ones "
        "with the reason. Reads the store only (no broker needed).")
    who = sent.add_mutually_exclusive_group(required=True)
    who.add_argument("--client", help="client_id: emails naming this client")
    who.add_argument("--user", help="user_id: emails to this member")
    sent.add_argument("--partner", help="the firm (partner id); default: every firm")
    sent.add_argument("--json", action="store_true", help="machine-readable output")

    events = commands.add_parser("events", help="histories for on-call",
                                 description="What the notifier recorded about a client or a member.")
    events_actions = events.add_subparsers(dest="action", metavar="{show}", required=True)
    show = events_actions.add_parser(
        "show", help="a client's or member's history, rejected events with their reason",
        description="The stored events of the notifier's aggregates about it (the client's file: status, name, "
        "assigned accountants, figures; the members' email preferences for it; its reminders; or the member "
        "and their preferences and reminders), then every inbound event whose subject it is, with its outcome: "
        "applied, or rejected with the reason. Reads the store only.")
    who = show.add_mutually_exclusive_group(required=True)
    who.add_argument("--client", help="client_id")
    who.add_argument("--member", help="user_id")
    show.add_argument("--partner", help="the firm (partner id); default: every firm that knows the id")
    show.add_argument("--json", action="store_true", help="machine-readable output")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure("notifier", "INFO" if args.command in (None, "serve") else "WARNING")
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"notifier: configuration error: {error}", file=sys.stderr)
        return 2
    if args.command == "digests":
        return digests(args, settings)
    if args.command in ("deliveries", "events", "dlq", "topics"):
        return run_ops(args, settings)
    return serve(settings)


def serve(settings: Settings) -> int:
    def make() -> tuple[FastAPI, Runtime]:
        service = bootstrap(settings)
        return service.api, service.runtime

    return run_service("notifier", make, settings.http_host, settings.http_port, store=settings.store)


def opened(settings: Settings, *, must_exist: bool) -> NotifierService | None:
    """The service's objects with the store open, or None (said on stderr) when it cannot be."""
    store = settings.store
    if must_exist and store.embedded and store.path != ":memory:" and not Path(store.path).exists():
        print(f"notifier: no store at {store.describe()}", file=sys.stderr)
        return None
    service = bootstrap(settings)
    try:
        service.notifier  # noqa: B018 (building it opens the store: the point here)
    except Exception as error:
        print(f"notifier: cannot open store {store.describe()}: {error}", file=sys.stderr)
        return None
    return service


def run_ops(args: argparse.Namespace, settings: Settings) -> int:
    """The on-call commands that read the store (and, for dlq and topics, the broker)."""
    service = opened(settings, must_exist=True)
    if service is None:
        return 3
    if args.command == "deliveries":
        return deliveries(service.notifier, client=args.client, user=args.user, partner=args.partner,
                          as_json=args.json)
    if args.command == "events":
        return show(service.notifier, client=args.client, member=args.member, partner=args.partner,
                    as_json=args.json)
    # Replayed events go through the live consumer's inbox; this process runs no sender, and
    # an event whose id was processed changes nothing, so a replay sends no email.
    return ops.run_command(args, service.notifier, service.sink, settings.kafka,
                           consumes=[t.value for t in CONSUMES], group_id=settings.group_id)


def digests(args: argparse.Namespace, settings: Settings) -> int:
    service = opened(settings, must_exist=args.action == "preview")
    if service is None:
        return 3
    at: datetime = args.at or datetime.now(UTC)
    if args.action == "preview":
        return preview(service, args.user, args.partner, at)
    return run_digests(service, at, send=not args.no_send, wait=args.wait)


def run_digests(service: NotifierService, at: datetime, *, send: bool, wait: float) -> int:
    result = service.scheduler.run(at)
    print(result.summary())
    if at > datetime.now(UTC):
        print("note: --at is in the future; these digests go out now")
    if not send:
        return 0
    leadership = service.leadership
    deadline = time.monotonic() + wait
    while not leadership.try_acquire():
        if time.monotonic() > deadline:
            print("a running notifier holds the sender lock: it sends what is due")
            return 0
        time.sleep(0.5)

    async def send_all() -> SendReport:
        try:
            return await service.sender.send_all()
        finally:
            await service.close_mailer()

    try:
        report = run(send_all())
    finally:
        leadership.release()
    print(f"emails: {report.summary()}")
    if report.sent or report.failed:
        print("their outcomes are published by the notifier service (its outbox relay)")
    return 1 if report.outage else 0


def preview(service: NotifierService, user: str, partner: str | None, at: datetime) -> int:
    """Print the next digest; reads the store and writes nothing."""
    settings = service.settings
    if partner is None:
        partners = partners_of(service.index, user)
        if len(partners) > 1:
            print(f"notifier: {user} has preferences in several firms ({', '.join(partners)}): "
                  "give --partner", file=sys.stderr)
            return 2
        if not partners:
            print(f"{user} has no email preference: no digest")
            return 0
        partner = partners[0]
    plan = service.scheduler.next_digest(partner, user, at)
    if plan is None:
        print(f"{user} of {partner} has no enabled email preference: no digest")
        return 0
    local = plan.due_at.astimezone(ZONE)
    print(f"next digest of {user} ({partner}): due {local.isoformat()} (Europe/Copenhagen)")
    for preference, reason in plan.excluded:
        print(f"  left out: client {preference.client_id}: {reason}")
    if not plan.included:
        print("nothing to send at that due time: every client is left out")
        return 0
    message = render(plan.delivery(), mail_from=settings.mail_from, base_url=settings.portal_base_url,
                     unsubscribe_base=settings.public_base_url, tokens=service.tokens)
    print()
    for name in ("From", "To", "Subject", "Message-ID", "Content-Language", "List-Unsubscribe",
                 "List-Unsubscribe-Post"):
        print(f"{name}: {message[name]}")
    print()
    body = message.get_body(("plain",))
    print(body.get_content() if body is not None else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())

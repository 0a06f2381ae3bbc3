"""`python -m services.client_directory [serve]` runs the service;
`python -m services.client_directory projections rebuild` rebuilds its read models."""

from __future__ import annotations

import argparse
import logging
import sys

from fastapi import FastAPI

from events import ops
from events.config import ConfigError
from events.logs import configure
from events.runtime import Runtime, run_service
from events.store import ReadModel
from services.client_directory import bootstrap
from services.client_directory.config import Settings
from services.client_directory.ops import show
from services.client_directory.rebuild import rebuild_read_model

log = logging.getLogger("client_directory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.client_directory",
        description="The partner portal's client directory: records client and member events, "
        "serves the Clients page API. Configuration comes from the environment (see README).",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    projections = commands.add_parser("projections", help="read-model maintenance")
    projections_commands = projections.add_subparsers(dest="action", required=True)
    projections_commands.add_parser(
        "rebuild",
        help="rebuild every read model from the event store into fresh tables, then switch over",
    )
    events_parser = commands.add_parser("events", help="histories for on-call")
    events_actions = events_parser.add_subparsers(dest="action", required=True)
    show_parser = events_actions.add_parser(
        "show", help="a client's or member's full history: stored events, and every inbound event with its "
        "outcome (rejected ones with their reason)")
    who = show_parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--client", help="client_id")
    who.add_argument("--member", help="user_id")
    show_parser.add_argument("--partner", help="the firm (partner id); default: every firm that knows the id")
    show_parser.add_argument("--json", action="store_true", help="machine-readable output")
    ops.add_commands(commands)
    args = parser.parse_args(argv)
    configure("client_directory", level="WARNING" if args.command not in (None, "serve") else "INFO")

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"client_directory: configuration error: {error}", file=sys.stderr)
        return 2

    if args.command == "projections":
        directory = bootstrap.open_directory(settings)
        count = rebuild_read_model(directory, ReadModel(directory))
        print(f"client_directory: read models rebuilt from {count} events and switched over")
        return 0
    if args.command in ("events", "dlq", "topics"):
        return run_ops(args, settings)

    def make() -> tuple[FastAPI, Runtime]:
        service = bootstrap.bootstrap(settings)
        return service.api, service.runtime

    return run_service("client_directory", make, settings.http_host, settings.http_port, store=settings.store)


def run_ops(args: argparse.Namespace, settings: Settings) -> int:
    directory = bootstrap.open_directory(settings)
    if args.command == "events":
        return show(directory, client=args.client, member=args.member, partner=args.partner, as_json=args.json)
    return ops.run_command(args, directory, bootstrap.inbox_sink(directory), settings.kafka,
                           consumes=bootstrap.consumed_topics(), group_id=settings.group_id)


if __name__ == "__main__":
    sys.exit(main())

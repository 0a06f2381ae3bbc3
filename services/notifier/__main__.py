"""`python -m services.notifier [serve]` runs the notifier."""

from __future__ import annotations

import argparse
import asyncio
import sys

from events.config import ConfigError
from events.logs import configure
from events.runtime import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.notifier",
        description="The partner portal's notifier: email preferences, scheduled digests and reminders. "
        "Configuration comes from the environment (see README).",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    args = parser.parse_args(argv)
    configure("notifier")

    from services.notifier.config import Settings

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"notifier: configuration error: {error}", file=sys.stderr)
        return 2

    from services.notifier.service import build

    try:
        service = build(settings)
    except Exception as error:
        print(f"notifier: cannot open store {settings.store.describe()}: {error}", file=sys.stderr)
        return 3

    async def run() -> None:
        service.relay.loop = asyncio.get_running_loop()
        await serve(service.api, service.runtime, settings.http_host, settings.http_port)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0 if args.command in (None, "serve") else 1


if __name__ == "__main__":
    sys.exit(main())

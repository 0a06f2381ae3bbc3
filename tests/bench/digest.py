"""5. Digest fan-out: a digest due for N recipients, made and sent by the on-call command
`python -m services.notifier digests run --at ...` into a real SMTP server in its own
process, beside a raw aiosmtplib loop over one reused connection into the same server."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib

from events.config import StoreUrl
from services.notifier.application.notifier import Notifier
from services.notifier.domain.model import ClientFile, Member, Preference
from services.notifier.domain.schedule import next_due
from tests.bench.common import SECRET, Report, Row, Service, new_port

SET_AT = datetime(2026, 1, 6, 9, 0, tzinfo=UTC)  # a Tuesday: the first digest is the next Monday
PER_FIRM = 100
MAIL_FROM = "Partner portal <no-reply@portal.bench>"


def populate(store_url: str, recipients: int, batch: int = 500) -> datetime:
    """One accountant per client, each with a weekly digest enabled; returns the due time."""
    notifier = Notifier(StoreUrl.parse("NOTIFIER_DB", store_url))
    try:
        pending: list[Any] = []
        for n in range(recipients):
            partner = f"firm-{n // PER_FIRM:05d}"
            user, client_id = f"{partner}-acc-{n:06d}", f"{partner}-c{n:06d}"
            member = Member(partner_id=partner, user_id=user, email=f"{user}@{partner}.test",
                            name=f"Chloé {n}", role="accountant", locale="fr" if n % 2 else "en")
            client = ClientFile(partner_id=partner, client_id=client_id)
            client.start(f"Société {n}")
            client.change_status("connected")
            client.assign(user)
            client.update_figures(f"{n % 9973}.50", "EUR", n % 7, n % 3, SET_AT - timedelta(hours=1))
            preference = Preference(partner_id=partner, client_id=client_id, user_id=user)
            preference.set(True, "weekly", SET_AT)
            pending += [member, client, preference]
            if len(pending) >= batch:
                notifier.record(*pending)
                pending.clear()
        if pending:
            notifier.record(*pending)
    finally:
        notifier.close()
    return next_due("weekly", SET_AT, None)


def counted(out: Path) -> dict[str, float]:
    try:
        values: dict[str, float] = json.loads(out.read_text())
        return values
    except (OSError, ValueError):
        return {"count": 0, "first": 0.0, "last": 0.0}


def wait_count(out: Path, count: int, timeout: float = 60.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = counted(out)
        if seen["count"] >= count:
            return seen
        time.sleep(0.1)
    raise TimeoutError(f"the SMTP server got {counted(out)['count']} of {count} messages")


def sample_message() -> EmailMessage:
    """A digest as the notifier renders it, to send raw."""
    from services.notifier.emails.models import ClientFigures, Money, Recipient
    from services.notifier.emails.render import render_digest

    return render_digest(
        recipient=Recipient(user_id="u", email="u@firm.test", name="Chloé", locale="fr"),
        clients=[ClientFigures(client_id="c", name="Société 1", wallet_balance=Money(Decimal("1234.50"), "EUR"),
                               missing_receipts=3, ready_to_export=1)],
        due_at=datetime(2026, 1, 12, 9, 0, tzinfo=UTC), mail_from=MAIL_FROM, base_url="https://portal.bench",
        unsubscribe_url="https://portal.bench/unsubscribe/x", client_unsubscribe_urls={"c": "https://p/u/c"},
        partner_id="firm",
    )


async def raw_rate(port: int, count: int) -> float:
    """aiosmtplib over one reused connection: the client and server's own limit."""
    message = sample_message()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, local_hostname="bench.local")
    await client.connect()
    try:
        started = time.perf_counter()
        for _ in range(count):
            await client.send_message(message)
        return count / (time.perf_counter() - started)
    finally:
        await client.quit()


def smtp_server(folder: Path, label: str) -> tuple[Service, int, Path]:
    port = new_port()
    out = folder / f"smtp-{label}.json"
    server = Service("tests.bench.smtp_counter", {}, folder / f"smtp-{label}.log", port=port,
                     args=[str(port), str(out)])
    server.wait_for_port()
    return server, port, out


def bench_digest(report: Report, store_url: str, folder: Path, memory: dict[str, float], recipients: int) -> None:
    due = populate(store_url, recipients)
    raw_count = min(recipients, 5000)
    smtp, port, out = smtp_server(folder, "raw")
    try:
        raw = asyncio.run(raw_rate(port, raw_count))
        wait_count(out, raw_count)
    finally:
        smtp.stop()
    report.add(Row("5 digest", f"raw aiosmtplib, one reused connection, {raw_count:,} emails", raw, "emails/s"))
    # The same server program, started afresh, so its counts are the digest's only.
    smtp, port, out = smtp_server(folder, "digest")
    try:
        env = {
            "NOTIFIER_DB": store_url, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TLS": "none",
            "MAIL_FROM": MAIL_FROM, "PORTAL_BASE_URL": "https://portal.bench", "PORTAL_JWT_SECRET": SECRET,
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{new_port()}",  # `digests run` needs no broker
        }
        started = time.perf_counter()
        command = Service("services.notifier", env, folder / "digests-run.log",
                          args=["digests", "run", "--at", due.isoformat()])
        code = command.process.wait()
        seconds = time.perf_counter() - started
        memory["notifier digests run"] = command.stop()
        if code != 0:
            raise RuntimeError(f"digests run exited with {code}; see {command.log}")
        seen = wait_count(out, recipients)
    finally:
        smtp.stop()
    # From the first digest's arrival (scheduling is over) to the last: the sending rate.
    sending = (recipients - 1) / max(seen["last"] - seen["first"], 1e-6)
    report.add(Row("5 digest", f"notifier digests run, {recipients:,} recipients: sending", sending, "emails/s",
                   "raw aiosmtplib", raw, ">= 70%", sending >= 0.7 * raw,
                   note="from the first digest to arrive to the last"))
    report.add(Row("5 digest", "notifier digests run: whole command (schedule + send)", recipients / seconds,
                   "emails/s", "raw aiosmtplib", raw, note=f"{seconds:.1f}s including start-up and scheduling"))

"""One mail transaction on an open session: MAIL, RCPT, a pause the caller chooses, DATA."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import aiosmtplib

from services.notifier.application.ports import BeforeData, SerializedMessage


class BeforeDataFailed(Exception):
    """What the caller's `before_data` raised, carried past the delivery error handling: it
    says nothing about the message or the server."""


async def transaction(client: aiosmtplib.SMTP, message: SerializedMessage, sender: str | None,
                      recipients: Sequence[str] | None, before_data: BeforeData | None
                      ) -> dict[str, aiosmtplib.SMTPResponse]:
    """aiosmtplib's `sendmail`, with the pause before DATA. Returns the recipients refused
    while others were accepted, as `sendmail` does."""
    sender = sender if sender is not None else message.envelope_from
    recipients = list(recipients if recipients is not None else message.envelope_to)
    if not recipients:
        raise ValueError("no recipients")
    options, encoding = await _mail_options(client, message)
    refused: list[aiosmtplib.SMTPRecipientRefused] = []
    try:
        await client.mail(sender, options=options, encoding=encoding)
        for recipient in recipients:
            try:
                await client.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused.append(exc)
        if len(refused) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(refused)
        if before_data is not None:
            try:
                await before_data()
            except BaseException as exc:
                raise BeforeDataFailed() from exc
        await client.data(message.data)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        # As sendmail does: reset the envelope so the session stays usable (if disconnected
        # or answered badly, the caller drops the connection).
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()
        raise
    return {exc.recipient: aiosmtplib.SMTPResponse(exc.code, exc.message) for exc in refused}


async def _mail_options(client: aiosmtplib.SMTP, message: SerializedMessage) -> tuple[list[str], str]:
    """MAIL FROM's options and the address encoding, from the server's extensions."""
    if client.is_ehlo_or_helo_needed:
        # The extensions (SIZE, SMTPUTF8) are known after EHLO, which aiosmtplib would
        # otherwise send with MAIL; HELO if EHLO is refused, as aiosmtplib does.
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            await client.helo()
    options: list[str] = []
    if client.supports_extension("size"):
        options.append(f"SIZE={len(message.data)}")
    if not message.smtputf8:
        return options, "ascii"
    if not client.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported(
            "an address contains non-ASCII characters and the server does not offer SMTPUTF8")
    options.append("SMTPUTF8")
    if client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")  # UTF-8 headers are 8-bit
    return options, "utf-8"

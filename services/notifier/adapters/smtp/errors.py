"""What an aiosmtplib or socket error means for the email: try again later, or never."""

from __future__ import annotations

import ssl

import aiosmtplib

from services.notifier.application.ports import DeliveryError, PermanentDeliveryError, TransientDeliveryError

# What a send may raise that says something about the server or the message.
DELIVERY_EXCEPTIONS = (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError)


def by_code(code: int, message: str) -> DeliveryError:
    # Anything that is not a 5xx (4xx, or a nonsensical code) is worth another try.
    kind = PermanentDeliveryError if 500 <= code < 600 else TransientDeliveryError
    return kind(message, code=code)


def classify(exc: Exception) -> DeliveryError:
    """Map whatever aiosmtplib/asyncio raised onto transient or permanent."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = {err.recipient: (err.code, err.message) for err in exc.recipients}
        first_code, first_message = next(iter(refused.values()), (0, str(exc)))
        if refused and all(500 <= code < 600 for code, _ in refused.values()):
            return PermanentDeliveryError(first_message, code=first_code, refused=refused)
        return TransientDeliveryError(first_message, code=first_code or None, refused=refused)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # Covers 4xx/5xx replies at greeting, EHLO, AUTH, MAIL, RCPT and DATA.
        return by_code(exc.code, exc.message)
    if caused_by_bad_certificate(exc):
        return PermanentDeliveryError(f"TLS certificate verification failed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TransientDeliveryError(f"timed out: {exc}")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return TransientDeliveryError(str(exc) or type(exc).__name__)
    if isinstance(exc, OSError):
        # Refused, reset, unreachable, TLS handshake torn down...
        return TransientDeliveryError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        # SMTPNotSupported and the plain SMTPException aiosmtplib raises when a required
        # extension (STARTTLS, AUTH, SMTPUTF8) is missing: configuration, not luck.
        return PermanentDeliveryError(str(exc))
    if isinstance(exc, ValueError):
        # aiosmtplib's verdict on the message itself (no recipients, bad address).
        return PermanentDeliveryError(f"message cannot be sent: {exc}")
    raise TypeError(f"unexpected delivery exception {exc!r}") from exc


def caused_by_bad_certificate(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def partly_refused(refused: dict[str, aiosmtplib.SMTPResponse]) -> PermanentDeliveryError:
    """Accepted for some recipients, refused for others: resending would duplicate it for
    the ones that got it, so it is not retried."""
    details = {addr: (resp.code, resp.message) for addr, resp in refused.items()}
    first_code, first_message = next(iter(details.values()))
    return PermanentDeliveryError(f"refused for {', '.join(sorted(details))}: {first_message}",
                                  code=first_code, refused=details)

"""The SMTP adapter on aiosmtplib: settings, error classification, pooled sessions, sending.

`SmtpMailer` implements the application's `Mailer` port (application/ports.py); the retry
policy is the application's (application/retry.py).
"""

from services.notifier.adapters.smtp.mailer import SmtpMailer
from services.notifier.adapters.smtp.settings import SmtpSettings, TlsMode

__all__ = ["SmtpMailer", "SmtpSettings", "TlsMode"]

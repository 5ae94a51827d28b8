"""Sending `email` outbox messages through the tenant's SMTP server, with the standard
library's smtplib in a worker thread (it blocks; the event loop must not).

Security is the tenant's `smtpSecurity`: `tls` speaks TLS from the first byte (port 465),
`starttls` upgrades a plain connection before anything else is sent and refuses a server that
does not offer it, `none` sends in the clear (a relay on the same host or network). Under TLS
the server's certificate is verified against the tenant's CA certificate, else the system's
CAs, and its name checked against `smtpHost`.

What the server answers decides what happens next: a 4xx reply, a dropped connection or a
server that does not answer is tried again later (the outbox's retries); a 5xx reply (the
recipient, the sender or the login refused), an untrusted certificate or a missing STARTTLS
is a permanent failure: the message is given up at once and audited."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from passgate.server.services.delivery import config, outgoing
from passgate.server.services.delivery.config import EmailConfig
from passgate.server.services.outbox import DeliveryFailed
from passgate.server.store.db import Engines
from passgate.server.store.outbox import OutboxRow
from passgate.server.store.tenants import TenantRow


def build(settings: EmailConfig, data: Mapping[str, Any], message_id: str) -> EmailMessage:
    """The MIME message: plain text, and HTML as the alternative a mail client prefers."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = data["to"]
    message["Subject"] = data["subject"]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(settings.sender)[1].rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(idstring=message_id.replace("-", ""), domain=domain)
    # Marks it as sent by a machine: autoresponders do not answer it (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(data["text"])
    message.add_alternative(data["html"], subtype="html")
    return message


def send_blocking(settings: EmailConfig, message: EmailMessage, timeout: float) -> None:
    """One SMTP session: connect, secure, log in, send. Raises smtplib's and ssl's errors."""
    context = settings.tls_context() if settings.security != "none" else None
    if settings.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=timeout, context=context
        )
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    with client:
        client.ehlo()
        if settings.security == "starttls":
            if not client.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS")
            client.starttls(context=context)
            client.ehlo()
        if settings.user:
            client.login(settings.user, settings.password or "")
        client.send_message(message)


def failure(exc: Exception) -> DeliveryFailed:
    """What an SMTP error means for the message: retry later, or give up."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        answer = "; ".join(
            f"{code} {text.decode(errors='replace')}" for code, text in exc.recipients.values()
        )
        return DeliveryFailed(
            f"the recipient was refused: {answer}", permanent=all(code >= 500 for code in codes)
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        what = (
            "the login was refused"
            if isinstance(exc, smtplib.SMTPAuthenticationError)
            else "the server refused"
        )
        return DeliveryFailed(f"{what}: {exc.smtp_code} {text}", permanent=exc.smtp_code >= 500)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryFailed(f"the server cannot do what the settings ask: {exc}", permanent=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryFailed(
            f"the server's TLS certificate is not trusted: {exc.verify_message}", permanent=True
        )
    if isinstance(exc, ssl.SSLError):
        return DeliveryFailed(f"TLS failed: {exc}", permanent=True)
    if isinstance(exc, smtplib.SMTPException | OSError):
        return DeliveryFailed(f"unreachable: {type(exc).__name__}: {exc}".rstrip(": "))
    return DeliveryFailed(f"{type(exc).__name__}: {exc}")


class EmailSender(outgoing.Sender):
    """The outbox's sender for `email` messages (services/outbox.py)."""

    kind = outgoing.EMAIL

    def __init__(self, engines: Engines, *, max_attempts: int, timeout: float = 30.0) -> None:
        super().__init__(engines, max_attempts=max_attempts)
        self._timeout = timeout

    async def send(self, tenant: TenantRow, data: Mapping[str, Any], message: OutboxRow) -> None:
        settings = config.email_config(tenant)
        if settings is None:
            raise DeliveryFailed("the tenant has no SMTP settings any more", permanent=True)
        mime = build(settings, data, message.id)
        try:
            await asyncio.to_thread(send_blocking, settings, mime, self._timeout)
        except (smtplib.SMTPException, OSError) as exc:
            raise failure(exc) from exc

"""Sending one-time codes, magic links and notices to users: email through the tenant's SMTP
server, SMS and WhatsApp through the tenant's signed webhook or a built-in SMS API sender.
Every message goes through the outbox (services/outbox.py), written in the caller's
transaction and sent after it commits, never on the request path.

INTERFACE SKELETON: the bodies are being written (issue 11, delivery); the signatures are the
contract the methods' code calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from passgate.server.services.delivery.addresses import (
    allowed_country_codes,
    normalise_email,
    normalise_phone,
)
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import InvalidRequest
from passgate.server.services.outbox import Outbox
from passgate.server.store.db import Db
from passgate.server.store.tenants import TenantRow

__all__ = [
    "DeliveryNotConfigured",
    "Messenger",
    "allowed_country_codes",
    "normalise_email",
    "normalise_phone",
]


class DeliveryNotConfigured(InvalidRequest):
    """The tenant has no way to send this kind of message (no SMTP server, no SMS webhook or
    sender): 400 `delivery_not_configured`, naming what to set."""

    error_code = "delivery_not_configured"


@dataclass(kw_only=True)
class Messenger:
    """The app's one messenger (made at start-up, `app.state.messenger`)."""

    outbox: Outbox | None = None

    async def send_code(
        self,
        db: Db,
        tenant: TenantRow,
        *,
        method: VerificationMethod,
        destination: str,
        code: str,
        locale: str | None,
    ) -> None:
        """Enqueue a one-time code: EMAIL_OTP to an address, SMS or WHATSAPP to an E.164
        number. Raises `DeliveryNotConfigured` when the tenant cannot send it."""
        raise NotImplementedError

    async def send_magic_link(
        self, db: Db, tenant: TenantRow, *, email: str, url: str, locale: str | None
    ) -> None:
        raise NotImplementedError

    async def send_notice(
        self,
        db: Db,
        tenant: TenantRow,
        *,
        email: str,
        notice: str,
        details: Mapping[str, str],
        locale: str | None,
    ) -> None:
        """Tell a user something happened to their account: `notice` is "recovery_used" or
        "authenticator_added" (details: method, time, ip, ...). A tenant without SMTP
        sends nothing (no error): notices are best effort."""
        raise NotImplementedError

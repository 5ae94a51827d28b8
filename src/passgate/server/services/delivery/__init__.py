"""Sending one-time codes, magic links and notices to users: email through the tenant's SMTP
server, SMS and WhatsApp through the tenant's signed webhook or a built-in SMS API sender
(docs/delivery.md).

Every message goes through the outbox (services/outbox.py): `Messenger` renders it and writes
it in the caller's transaction, and the outbox sends it once that transaction commits, never
on the request path (email.py, sms.py). So the caller learns at once what it can know then (no
SMTP server or SMS sender set: `DeliveryNotConfigured`, an invalid address or number:
`InvalidRequest`), and what it cannot (a server that refuses or is down) is retried by the
outbox and, when given up, recorded in the audit log. A tenant may instead have its messages
written to the server's log, for development only (dev_log.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from passgate.server.services.delivery import config, outgoing, templates
from passgate.server.services.delivery.addresses import (
    allowed_country_codes,
    mask_email,
    mask_phone,
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

log = structlog.get_logger("passgate.delivery")

# How long a code or link stays valid unless the caller says otherwise (minutes).
DEFAULT_EXPIRY_MINUTES = 10


class DeliveryNotConfigured(InvalidRequest):
    """The tenant has no way to send this kind of message (no SMTP server, no SMS webhook or
    sender): 400 `delivery_not_configured`, naming what to set."""

    error_code = "delivery_not_configured"


@dataclass(kw_only=True)
class Messenger:
    """The app's one messenger (made at start-up, `app.state.messenger`; its `outbox` is set
    once the outbox runs, and wakes it when a message's transaction commits)."""

    outbox: Outbox | None = None

    def _wake(self) -> Callable[[], None] | None:
        return self.outbox.wake if self.outbox is not None else None

    async def send_code(
        self,
        db: Db,
        tenant: TenantRow,
        *,
        method: VerificationMethod,
        destination: str,
        code: str,
        locale: str | None,
        expires_in_minutes: int = DEFAULT_EXPIRY_MINUTES,
    ) -> None:
        """Enqueue a one-time code: EMAIL_OTP to an address, SMS or WHATSAPP to an E.164
        number. Raises `DeliveryNotConfigured` when the tenant cannot send it."""
        values = _values(tenant, expires_in_minutes, code=code, channel=method.value)
        expires_at = _expiry(expires_in_minutes)
        if method is VerificationMethod.EMAIL_OTP:
            await self._email(db, tenant, "code", destination, locale, values, expires_at)
            return
        if method not in (VerificationMethod.SMS, VerificationMethod.WHATSAPP):
            raise InvalidRequest(f"{method.value} codes are not sent by Passgate")
        settings = config.sms_config(tenant)
        sender = settings.sender_for(method.value) if settings is not None else None
        if sender is None and not config.logs(tenant, config.SMS):
            needs = "an SMS webhook" if method is VerificationMethod.WHATSAPP else "an SMS sender"
            raise DeliveryNotConfigured(
                f"this tenant cannot send {method.value} codes: it needs {needs} "
                "(`passgate tenant sms`, or Delivery in the console)"
            )
        number = normalise_phone(destination, allowed_country_codes(tenant))
        text = templates.render_sms(config.message_templates(tenant), locale, values)
        data = {
            "phoneNumber": number,
            "code": code,
            "locale": locale,
            "channel": method.value,
            "message": text,
            "expiresAt": expires_at,
        }
        await outgoing.put(
            db,
            tenant,
            kind=outgoing.SMS,
            masked_destination=mask_phone(number),
            data=data,
            wake=self._wake(),
        )

    async def send_magic_link(
        self,
        db: Db,
        tenant: TenantRow,
        *,
        email: str,
        url: str,
        locale: str | None,
        expires_in_minutes: int = DEFAULT_EXPIRY_MINUTES,
    ) -> None:
        """Enqueue a sign-in link by email. Raises `DeliveryNotConfigured` without SMTP."""
        values = _values(tenant, expires_in_minutes, link=url)
        expires_at = _expiry(expires_in_minutes)
        await self._email(db, tenant, "magic_link", email, locale, values, expires_at)

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
        if not _sends_email(tenant):
            log.info("notice not sent: the tenant has no SMTP settings", notice=notice)
            return
        values = {"app_name": _app_name(tenant), "notice": notice, "details": dict(details)}
        await self._email(db, tenant, "notice", email, locale, values, None)

    async def _email(
        self,
        db: Db,
        tenant: TenantRow,
        kind: str,
        to: str,
        locale: str | None,
        values: Mapping[str, Any],
        expires_at: int | None,
    ) -> None:
        if not _sends_email(tenant):
            raise DeliveryNotConfigured(
                "this tenant cannot send email: it has no SMTP server "
                "(`passgate tenant email`, or Delivery in the console)"
            )
        address = normalise_email(to)
        rendered = templates.render_email(kind, config.message_templates(tenant), locale, values)
        data = {
            "to": address,
            "subject": rendered.subject,
            "text": rendered.text,
            "html": rendered.html,
            "purpose": kind,
            "expiresAt": expires_at,
        }
        await outgoing.put(
            db,
            tenant,
            kind=outgoing.EMAIL,
            masked_destination=mask_email(address),
            data=data,
            wake=self._wake(),
        )


def _sends_email(tenant: TenantRow) -> bool:
    return config.email_config(tenant) is not None or config.logs(tenant, config.EMAIL)


def _app_name(tenant: TenantRow) -> str:
    return tenant.rp_name or tenant.name


def _values(tenant: TenantRow, expires_in_minutes: int, **values: Any) -> dict[str, Any]:
    return {"app_name": _app_name(tenant), "expiry_minutes": expires_in_minutes, **values}


def _expiry(minutes: int) -> int:
    return int(time.time()) + minutes * 60

"""Sending `sms` outbox messages (SMS and WhatsApp codes): to the tenant's signed webhook, or
for SMS through Twilio's Messages API.

The webhook receives `POST` JSON `{phoneNumber, code, locale, channel: "SMS"|"WHATSAPP",
message}` signed exactly as push webhooks are (`x-signature-v2`, services/push/webhooks.py),
with the tenant's SMS webhook secret, so the same verifier checks both; `x-passgate-event-id`
is the message id to deduplicate on (a message may arrive twice).

Twilio: `POST {baseUrl}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded `To`, `From`,
`Body`, HTTP Basic with the account SID and auth token (Twilio's documented API; tested
against a loopback receiver only, see docs/delivery.md#twilio).

A 4xx answer (other than 408 and 429) means the request itself is refused and sending it again
will not help: given up at once. A 5xx, 408, 429 or no answer is tried again."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx

from passgate.server.services.delivery import config, outgoing
from passgate.server.services.outbox import DeliveryFailed
from passgate.server.services.push.webhooks import (
    ATTEMPT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    signature_header,
)
from passgate.server.store.db import Engines
from passgate.server.store.outbox import OutboxRow
from passgate.server.store.tenants import TenantRow

# The webhook's body, in this order.
WEBHOOK_FIELDS = ("phoneNumber", "code", "locale", "channel", "message")
_RETRIED = {408, 429}


def webhook_body(data: Mapping[str, Any]) -> str:
    return json.dumps({name: data.get(name) for name in WEBHOOK_FIELDS}, separators=(",", ":"))


def twilio_url(twilio: config.TwilioConfig) -> str:
    sid = urllib.parse.quote(twilio.account_sid, safe="")
    return f"{twilio.base_url}/2010-04-01/Accounts/{sid}/Messages.json"


def _answered(response: httpx.Response, who: str) -> None:
    if response.is_success:
        return
    status = response.status_code
    detail = response.text[:200].strip()
    permanent = 400 <= status < 500 and status not in _RETRIED
    raise DeliveryFailed(
        f"{who} answered HTTP {status}{f': {detail}' if detail else ''}", permanent=permanent
    )


class SmsSender(outgoing.Sender):
    """The outbox's sender for `sms` messages (services/outbox.py)."""

    kind = outgoing.SMS

    def __init__(self, engines: Engines, http: httpx.AsyncClient, *, max_attempts: int) -> None:
        super().__init__(engines, max_attempts=max_attempts)
        self._http = http

    async def send(self, tenant: TenantRow, data: Mapping[str, Any], message: OutboxRow) -> None:
        settings = config.sms_config(tenant)
        channel = str(data.get("channel") or "SMS")
        how = settings.sender_for(channel) if settings is not None else None
        if settings is None or how is None:
            raise DeliveryFailed(f"the tenant has no {channel} sender any more", permanent=True)
        try:
            if how == "twilio":
                assert settings.twilio is not None
                await self._twilio(settings.twilio, data)
            else:
                assert settings.webhook_url and settings.webhook_secret
                await self._webhook(settings.webhook_url, settings.webhook_secret, data, message)
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise DeliveryFailed(f"unreachable: {reason}") from exc

    async def _webhook(
        self, url: str, secret: str, data: Mapping[str, Any], message: OutboxRow
    ) -> None:
        body = webhook_body(data)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secret, body),
            EVENT_ID_HEADER: message.id,
            ATTEMPT_HEADER: str(message.attempts),
        }
        _answered(await self._http.post(url, content=body, headers=headers), "the SMS webhook")

    async def _twilio(self, twilio: config.TwilioConfig, data: Mapping[str, Any]) -> None:
        form = {"To": data["phoneNumber"], "From": twilio.sender, "Body": data["message"]}
        response = await self._http.post(
            twilio_url(twilio), data=form, auth=(twilio.account_sid, twilio.auth_token)
        )
        _answered(response, "Twilio")

"""The app's one `Messenger` (codes, magic links and notices, through the outbox) as a
dependency, and the outbox senders that deliver what it enqueues (services/delivery/)."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request

from passgate.server.services.delivery import Messenger, dev_log, outgoing
from passgate.server.services.delivery.email import EmailSender
from passgate.server.services.delivery.sms import SmsSender
from passgate.server.services.outbox import Sender
from passgate.server.settings import Settings
from passgate.server.store import tenants
from passgate.server.store.db import Engines


def create_senders(
    engines: Engines, settings: Settings, http: httpx.AsyncClient
) -> dict[str, Sender]:
    """The outbox's senders for `email` and `sms` messages. They share the push webhooks'
    HTTP client (its timeout is `push_delivery_timeout_seconds`); SMTP uses the same timeout."""
    max_attempts = settings.outbox_max_attempts
    timeout = settings.push_delivery_timeout_seconds
    return {
        outgoing.EMAIL: EmailSender(engines, max_attempts=max_attempts, timeout=timeout),
        outgoing.SMS: SmsSender(engines, http, max_attempts=max_attempts),
    }


async def warn_of_log_transports(engines: Engines) -> None:
    """At start-up, a warning in the log for each tenant whose codes and links are written to
    it instead of sent (the development-only log transport, services/delivery/dev_log.py)."""
    async with engines.transaction(read_only=True) as db:
        found = await tenants.find_tenants(db)
    dev_log.warn_of_log_transports(found)


async def _messenger(request: Request) -> Messenger:
    messenger: Messenger = request.app.state.messenger
    return messenger


Messaging = Annotated[Messenger, Depends(_messenger)]

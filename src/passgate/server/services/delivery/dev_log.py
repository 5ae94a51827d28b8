"""The development-only log transport: a tenant set to it (`passgate tenant email TENANT
--log`, `passgate tenant sms TENANT --log`, and the dev tenant of `passgate serve --dev` until
it is given a real sender) has each message written to the server's log instead of sent.

The message still goes through the outbox like any other (services/delivery/outgoing.py): the
same rendering, sealing, retries, expiry and audit; only the last step differs. The line shows
the whole message, the code or link in it, which is the point in development and a leak
anywhere else: the server warns at start-up of every tenant set to it
(`warn_of_log_transports`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from passgate.server.services.delivery import config
from passgate.server.store.tenants import TenantRow

log = structlog.get_logger("passgate.delivery")


def _one_line(text: Any) -> str:
    # Whitespace collapsed: a message spans one log line, and nothing in it can pass for
    # another line of the log.
    return " ".join(str(text).split())


def write(kind: str, data: Mapping[str, Any], *, tenant_id: str, message_id: str) -> None:
    """One log line with the message: `dev delivery: email to ADDRESS: SUBJECT | TEXT` or
    `dev delivery: sms to NUMBER: TEXT` (`whatsapp` for a WhatsApp code)."""
    if kind == config.EMAIL:
        head = f"email to {data['to']}: {_one_line(data['subject'])} |"
        body = data["text"]
    else:
        channel = str(data.get("channel") or "SMS").lower()
        head = f"{channel} to {data['phoneNumber']}:"
        body = data["message"]
    log.warning(f"dev delivery: {head} {_one_line(body)}", tenant_id=tenant_id, id=message_id)


def warn_of_log_transports(tenants: Sequence[TenantRow]) -> None:
    """A warning for each tenant whose messages go to the log (called at start-up)."""
    for tenant in tenants:
        kinds = [kind for kind in (config.EMAIL, config.SMS) if config.logs(tenant, kind)]
        if kinds:
            log.warning(
                f"tenant {tenant.id} ({tenant.name}) writes its {' and '.join(kinds)} messages "
                "to this log, codes and links included: for development only, never on a "
                "server real users reach (passgate tenant email|sms TENANT to set a sender)",
                tenant_id=tenant.id,
            )

"""A tenant's push settings: challenge expiry, number matching, the rate limit, the webhook,
APNs and FCM. Private keys are write-only here: an empty key field keeps the stored key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response

from passgate.server.database import Database
from passgate.server.pages.console import forms, web
from passgate.server.services import tenant_admin
from passgate.server.services.errors import InvalidRequest
from passgate.server.services.push.settings import PushSettings

router = APIRouter(route_class=web.ConsoleRoute)
Text = Annotated[str, Form(max_length=20_000)]
WEBHOOK_FIELDS = (
    "webhook_url",
    "webhook_secret",
    "previous_webhook_secret",
    "previous_webhook_secret_expires_at",
)
NUMBERS = {
    "challenge_expiry_seconds": "The challenge expiry",
    "code_digits": "The number of digits",
    "rate_limit": "The rate limit",
    "rate_limit_window_seconds": "The rate-limit window",
}


async def _push_page(
    request: Request,
    db: Database,
    tenant_id: str,
    *,
    values: Mapping[str, str] | None = None,
    refusal: forms.Refusal | None = None,
) -> Response:
    overview = await tenant_admin.overview(db, tenant_id)
    context = {
        "overview": overview,
        "tab": "push",
        "values": values or _current_values(overview.push),
        "refusal": refusal,
        "saved": request.query_params.get("saved"),
    }
    status = refusal.status_code if refusal else 200
    return web.page(request, "console/tenant_push.html", context, status_code=status)


def _current_values(settings: PushSettings) -> dict[str, str]:
    values = {name: str(getattr(settings, name)) for name in NUMBERS}
    apns = settings.apns or {}
    values.update(
        challenge_on_track="on" if settings.challenge_on_track else "",
        number_matching="on" if settings.number_matching else "",
        credential_lifetime_minutes=str(settings.credential_lifetime_minutes or ""),
        webhook_url=settings.webhook_url or "",
        apns_team_id=apns.get("teamId", ""),
        apns_key_id=apns.get("keyId", ""),
        apns_bundle_id=apns.get("bundleId", ""),
        apns_sandbox="on" if apns.get("sandbox") else "",
    )
    return values


@router.get("/tenants/{tenant_id}/push")
async def push_page(
    request: Request, tenant_id: str, signed_in: web.SignedIn, db: Database
) -> Response:
    return await _push_page(request, db, tenant_id)


@router.post("/tenants/{tenant_id}/push")
async def push_save(
    request: Request, tenant_id: str, signed_in: web.CheckedForm, db: Database
) -> Response:
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    actor = web.actor(request, signed_in)

    async def save() -> object:
        overview = await tenant_admin.overview(db, tenant_id)
        changes, clear = _changes(values, overview.push)
        return await tenant_admin.configure_push(db, actor, tenant_id, clear=clear, **changes)

    _saved, refusal = await forms.attempt(db, save)
    if refusal is None:
        return web.redirect(f"/admin/tenants/{tenant_id}/push?saved=1")
    shown = {key: value for key, value in values.items() if not key.endswith("_key")}
    return await _push_page(request, db, tenant_id, values=shown, refusal=refusal)


def _changes(values: Mapping[str, str], current: PushSettings) -> tuple[dict[str, Any], list[str]]:
    """The form as `configure` arguments: changed values, and fields to reset."""
    changes: dict[str, Any] = {
        name: forms.required_number(values.get(name, ""), label) for name, label in NUMBERS.items()
    }
    changes["challenge_on_track"] = bool(values.get("challenge_on_track"))
    changes["number_matching"] = bool(values.get("number_matching"))
    clear: list[str] = []
    lifetime = forms.whole_number(values.get("credential_lifetime_minutes", ""), "The lifetime")
    if lifetime is None:
        clear.append("credential_lifetime_minutes")
    changes["credential_lifetime_minutes"] = lifetime
    url = values.get("webhook_url", "").strip()
    if url:
        changes["webhook_url"] = url
    else:
        clear.extend(WEBHOOK_FIELDS)
    if values.get("apns_remove"):
        clear.append("apns")
    else:
        changes["apns"] = _apns(values, current.apns)
    if values.get("fcm_remove"):
        clear.append("fcm")
    else:
        changes["fcm"] = _fcm(values.get("fcm_service_account_key", ""))
    return changes, clear


def _apns(values: Mapping[str, str], current: dict[str, Any] | None) -> dict[str, Any] | None:
    """APNs settings from the form, keeping the stored .p8 key when none is pasted; None
    leaves them as they are."""
    fields = {
        "teamId": values.get("apns_team_id", "").strip(),
        "keyId": values.get("apns_key_id", "").strip(),
        "bundleId": values.get("apns_bundle_id", "").strip(),
        "sandbox": bool(values.get("apns_sandbox")),
    }
    key = values.get("apns_private_key", "").strip()
    if not key and not current and not any(fields[name] for name in ("teamId", "keyId")):
        return None
    return {**fields, "privateKey": key or (current or {}).get("privateKey", "")}


def _fcm(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        account = json.loads(text)
    except ValueError:
        raise InvalidRequest("the FCM service account is not JSON") from None
    if not isinstance(account, dict):
        raise InvalidRequest("the FCM service account must be a JSON object")
    return account

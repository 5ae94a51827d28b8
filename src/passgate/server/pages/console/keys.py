"""Rotating a tenant's secret key and webhook secret, each with a grace period during which
the old one keeps working (the old key authenticates; webhooks carry both signatures). A new
secret is shown once, on the page the rotation answers with. And rotating its token signing
key, as `passgate keys rotate-signing` does (the old public key stays in the JWKS until the
tokens it signed have expired); nothing secret is shown."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from passgate.server.database import Database
from passgate.server.pages.console import forms, web
from passgate.server.services import tenant_admin

router = APIRouter(route_class=web.ConsoleRoute)
Grace = Annotated[str, Form(max_length=20)]


async def _keys_page(
    request: Request,
    db: Database,
    tenant_id: str,
    *,
    refusal: forms.Refusal | None = None,
    form: str | None = None,
) -> Response:
    context = {
        "overview": await tenant_admin.overview(db, tenant_id),
        "tab": "keys",
        "grace_choices": forms.GRACE_CHOICES,
        "refusal": refusal,
        "form": form,
    }
    status = refusal.status_code if refusal else 200
    return web.page(request, "console/tenant_keys.html", context, status_code=status)


@router.get("/tenants/{tenant_id}/keys")
async def keys_page(
    request: Request, tenant_id: str, signed_in: web.SignedIn, db: Database
) -> Response:
    return await _keys_page(request, db, tenant_id)


@router.post("/tenants/{tenant_id}/keys/secret")
async def rotate_secret_key(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    grace: Grace = "",
) -> Response:
    actor = web.actor(request, signed_in)

    async def rotate() -> str:
        period = forms.grace(grace)
        return await tenant_admin.rotate_secret_key(db, actor, tenant_id, period)

    secret_key, refusal = await forms.attempt(db, rotate)
    if secret_key is None:
        return await _keys_page(request, db, tenant_id, refusal=refusal, form="secret")
    return await _rotated_page(request, db, tenant_id, "secret key", secret_key)


@router.post("/tenants/{tenant_id}/keys/webhook")
async def rotate_webhook_secret(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    grace: Grace = "",
) -> Response:
    actor = web.actor(request, signed_in)

    async def rotate() -> str | None:
        period = forms.grace(grace)
        rotated = await tenant_admin.rotate_webhook_secret(db, actor, tenant_id, period)
        return rotated.webhook_secret

    secret, refusal = await forms.attempt(db, rotate)
    if secret is None:
        return await _keys_page(request, db, tenant_id, refusal=refusal, form="webhook")
    return await _rotated_page(request, db, tenant_id, "webhook secret", secret)


@router.post("/tenants/{tenant_id}/keys/signing")
async def rotate_signing_key(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
) -> Response:
    await tenant_admin.rotate_signing_key(db, web.actor(request, signed_in), tenant_id)
    return await _keys_page(request, db, tenant_id)


async def _rotated_page(
    request: Request, db: Database, tenant_id: str, what: str, secret: str
) -> Response:
    """The new secret, shown once, after a rotation of either kind."""
    context = {
        "overview": await tenant_admin.overview(db, tenant_id),
        "tab": "keys",
        "what": what,
        "secret": secret,
    }
    return web.page(request, "console/key_rotated.html", context)

"""Tenants: the list, creating one (its secret key is shown once), and the settings page:
name and token lifetime, relying party id and origins, action outcomes, recovery methods.

Each form posts to its own route, which saves all of it or none of it: a refused value is
shown above the form with the reason, and what was typed is kept."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response

from passgate.server.database import Database
from passgate.server.pages.console import forms, web
from passgate.server.services import recovery, tenant_admin, tenants
from passgate.server.services.enums import ActionOutcome
from passgate.server.services.errors import InvalidRequest

router = APIRouter(route_class=web.ConsoleRoute)
Text = Annotated[str, Form(max_length=10_000)]


@router.get("/tenants")
async def tenant_list(request: Request, signed_in: web.SignedIn, db: Database) -> Response:
    return await _list_page(request, db)


async def _list_page(
    request: Request,
    db: Database,
    *,
    refusal: forms.Refusal | None = None,
    values: Mapping[str, str] | None = None,
) -> Response:
    context = {
        "tenants": await tenants.list_tenants(db),
        "refusal": refusal,
        "values": values or {},
    }
    status = refusal.status_code if refusal else 200
    return web.page(request, "console/tenants.html", context, status_code=status)


@router.post("/tenants")
async def tenant_create(
    request: Request,
    signed_in: web.CheckedForm,
    db: Database,
    name: Text = "",
    rp_id: Text = "",
    origins: Text = "",
) -> Response:
    actor = web.actor(request, signed_in)
    created, refusal = await forms.attempt(
        db,
        lambda: tenant_admin.create(
            db, actor, name=name, rp_id=rp_id, origins=forms.lines(origins)
        ),
    )
    if created is None:
        values = {"name": name, "rp_id": rp_id, "origins": origins}
        return await _list_page(request, db, refusal=refusal, values=values)
    tenant, secret_key = created
    return web.page(
        request, "console/tenant_created.html", {"tenant": tenant, "secret_key": secret_key}
    )


async def settings_page(
    request: Request,
    db: Database,
    tenant_id: str,
    *,
    form: str | None = None,
    refusal: forms.Refusal | None = None,
    values: Mapping[str, Any] | None = None,
) -> Response:
    """The settings page, with `refusal` shown above the form named `form`."""
    overview = await tenant_admin.overview(db, tenant_id)
    context = {
        "overview": overview,
        "tab": "settings",
        "form": form,
        "refusal": refusal,
        "values": values or {},
        "outcomes": [outcome.value for outcome in ActionOutcome],
        "recovery_choices": [method.value for method in recovery.ELIGIBLE],
        "recovery_methods": [method.value for method in recovery.methods(overview.tenant)],
        "saved": request.query_params.get("saved"),
    }
    status = refusal.status_code if refusal else 200
    return web.page(request, "console/tenant.html", context, status_code=status)


@router.get("/tenants/{tenant_id}")
async def tenant_page(
    request: Request, tenant_id: str, signed_in: web.SignedIn, db: Database
) -> Response:
    return await settings_page(request, db, tenant_id)


@router.post("/tenants/{tenant_id}/general")
async def tenant_general(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    name: Text = "",
    rp_name: Text = "",
    token_lifetime: Text = "",
    accent_color: Text = "",
) -> Response:
    actor = web.actor(request, signed_in)

    async def save() -> object:
        lifetime = forms.required_number(token_lifetime, "The token lifetime")
        changes = tenants.TenantChanges(name=name, rp_name=rp_name, token_lifetime_seconds=lifetime)
        await tenant_admin.set_accent_color(db, actor, tenant_id, accent_color.strip() or None)
        return await tenant_admin.update(db, actor, tenant_id, changes)

    values = {
        "name": name,
        "rp_name": rp_name,
        "token_lifetime": token_lifetime,
        "accent_color": accent_color,
    }
    return await _saved_or_refused(request, db, tenant_id, "general", save, values)


@router.post("/tenants/{tenant_id}/relying-party")
async def tenant_relying_party(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    rp_id: Text = "",
    origins: Text = "",
    confirm_passkeys: Text = "",
) -> Response:
    """The rp id and origins; a new rp id is refused while the tenant has passkeys (which it
    would orphan) unless the form confirms with their count."""
    actor = web.actor(request, signed_in)

    async def save() -> object:
        confirmed = forms.whole_number(confirm_passkeys, "The confirmation")
        listed = forms.lines(origins)
        if not listed:
            raise InvalidRequest("list at least one origin")
        changes = tenants.TenantChanges(
            rp_id=rp_id, origins=listed, confirm_orphaned_passkeys=confirmed
        )
        return await tenant_admin.update(db, actor, tenant_id, changes)

    values = {"rp_id": rp_id, "origins": origins, "confirm_passkeys": confirm_passkeys}
    return await _saved_or_refused(request, db, tenant_id, "relying_party", save, values)


@router.post("/tenants/{tenant_id}/outcomes")
async def tenant_outcome(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    action_code: Text = "",
    outcome: Text = "",
) -> Response:
    actor = web.actor(request, signed_in)

    async def save() -> object:
        try:
            chosen = ActionOutcome(outcome)
        except ValueError:
            raise InvalidRequest(f"{outcome!r} is not an outcome") from None
        await tenant_admin.set_outcome(db, actor, tenant_id, action_code.strip(), chosen)
        return chosen

    values = {"action_code": action_code, "outcome": outcome}
    return await _saved_or_refused(request, db, tenant_id, "outcomes", save, values)


@router.post("/tenants/{tenant_id}/recovery")
async def tenant_recovery(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    method: Annotated[list[str] | None, Form(max_length=len(recovery.ELIGIBLE))] = None,
) -> Response:
    """The methods whose fresh verification lets an enrolled user add an authenticator."""
    actor = web.actor(request, signed_in)

    async def save() -> object:
        return await recovery.set_methods(db, actor, tenant_id, method or [])

    values = {"recovery_methods": method or []}
    return await _saved_or_refused(request, db, tenant_id, "recovery", save, values)


async def _saved_or_refused(
    request: Request,
    db: Database,
    tenant_id: str,
    form: str,
    save: Any,
    values: Mapping[str, Any],
) -> Response:
    _saved, refusal = await forms.attempt(db, save)
    if refusal is None:
        return web.redirect(f"/admin/tenants/{tenant_id}?saved={form}#{form}")
    return await settings_page(request, db, tenant_id, form=form, refusal=refusal, values=values)

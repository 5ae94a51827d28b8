"""A tenant's native apps (iOS app ids, Android packages with their signing-certificate
fingerprints), with a preview of the `.well-known` files they change before saving."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response

from passgate.server.database import Database
from passgate.server.pages.console import forms, web
from passgate.server.services import tenant_admin

router = APIRouter(route_class=web.ConsoleRoute)
Text = Annotated[str, Form(max_length=20_000)]


async def _apps_page(
    request: Request,
    db: Database,
    tenant_id: str,
    *,
    values: Mapping[str, str] | None = None,
    preview: list[tenant_admin.WellKnownFile] | None = None,
    refusal: forms.Refusal | None = None,
) -> Response:
    overview = await tenant_admin.overview(db, tenant_id)
    if values is None:
        dumped = overview.passkeys.model_dump(by_alias=True)
        values = {
            "ios_apps": "\n".join(dumped["iosApps"]),
            "android_apps": forms.android_lines(dumped["androidApps"]),
        }
    if preview is None:  # the files as served now: no change proposed
        preview = await tenant_admin.preview_passkeys(db, tenant_id, {})
    context = {
        "overview": overview,
        "tab": "apps",
        "values": values,
        "preview": preview,
        "refusal": refusal,
        "saved": request.query_params.get("saved"),
    }
    status = refusal.status_code if refusal else 200
    return web.page(request, "console/tenant_apps.html", context, status_code=status)


@router.get("/tenants/{tenant_id}/apps")
async def apps_page(
    request: Request, tenant_id: str, signed_in: web.SignedIn, db: Database
) -> Response:
    return await _apps_page(request, db, tenant_id)


@router.post("/tenants/{tenant_id}/apps")
async def apps_save(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    ios_apps: Text = "",
    android_apps: Text = "",
    intent: Annotated[str, Form(max_length=20)] = "preview",
) -> Response:
    """`intent=preview` shows the files as they would become; `intent=save` saves."""
    actor = web.actor(request, signed_in)
    values = {"ios_apps": ios_apps, "android_apps": android_apps}

    def changes() -> dict[str, Any]:
        return {"iosApps": forms.lines(ios_apps), "androidApps": forms.android_apps(android_apps)}

    if intent != "save":
        preview, refusal = await forms.attempt(
            db, lambda: tenant_admin.preview_passkeys(db, tenant_id, changes())
        )
        return await _apps_page(
            request, db, tenant_id, values=values, preview=preview, refusal=refusal
        )

    async def save() -> object:
        return await tenant_admin.change_passkeys(db, actor, tenant_id, changes())

    _saved, refusal = await forms.attempt(db, save)
    if refusal is None:
        return web.redirect(f"/admin/tenants/{tenant_id}/apps?saved=1")
    return await _apps_page(request, db, tenant_id, values=values, refusal=refusal)

"""A tenant's delivery settings: the SMTP server that sends codes, links and notices by email,
and the SMS senders (a signed webhook, Twilio) with the countries SMS may go to
(services/delivery/config.py, docs/delivery.md).

Passwords, tokens and secrets are write-only: the page says whether one is stored, never what
it is, and an empty field keeps the stored one. A webhook given without a secret (and with none
stored) gets a new one, shown on this page once.

A tenant set to the development-only log transport (`passgate tenant email|sms TENANT --log`)
is shown as such, with a way to stop it; saving a real sender replaces it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response

from passgate.server.database import Database
from passgate.server.pages.console import forms, web
from passgate.server.services import tenants
from passgate.server.services.delivery import config

router = APIRouter(route_class=web.ConsoleRoute)
# Never shown back, even when the form is refused.
SECRET_FIELDS = ("smtp_password", "webhook_secret", "twilio_auth_token")


async def _page(
    request: Request,
    db: Database,
    tenant_id: str,
    *,
    values: Mapping[str, str] | None = None,
    refusal: forms.Refusal | None = None,
    refused_form: str | None = None,
    made_secret: str | None = None,
) -> Response:
    tenant = await tenants.get_tenant(db, tenant_id)
    email = config.public_email(tenant) or {}
    sms = config.public_sms(tenant) or {}
    context = {
        "tenant": tenant,
        "tab": "delivery",
        "email": email,
        "sms": sms,
        "values": values or _current_values(email, sms),
        "refusal": refusal,
        "refused_form": refused_form,
        "made_secret": made_secret,
        "securities": config.SECURITIES,
        "saved": request.query_params.get("saved"),
    }
    status = refusal.status_code if refusal else 200
    return web.page(request, "console/tenant_delivery.html", context, status_code=status)


def _current_values(email: Mapping[str, Any], sms: Mapping[str, Any]) -> dict[str, str]:
    twilio = sms.get("twilio") or {}
    return {
        "smtp_host": email.get("smtpHost") or "",
        "smtp_port": str(email.get("smtpPort") or ""),
        "smtp_security": email.get("smtpSecurity") or "starttls",
        "smtp_user": email.get("smtpUser") or "",
        "smtp_from": email.get("from") or "",
        "webhook_url": sms.get("webhookUrl") or "",
        "twilio_account_sid": twilio.get("accountSid") or "",
        "twilio_from": twilio.get("from") or "",
        "twilio_base_url": twilio.get("baseUrl") or "",
        "allowed_country_codes": ", ".join(sms.get("allowedCountryCodes") or []),
    }


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _kept(values: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in values.items() if key not in SECRET_FIELDS}


@router.get("/tenants/{tenant_id}/delivery")
async def delivery_page(
    request: Request, tenant_id: str, signed_in: web.SignedIn, db: Database
) -> Response:
    return await _page(request, db, tenant_id)


@router.post("/tenants/{tenant_id}/delivery/email")
async def email_save(
    request: Request, tenant_id: str, signed_in: web.CheckedForm, db: Database
) -> Response:
    values = await _form(request)
    actor = web.actor(request, signed_in)

    async def save() -> object:
        if values.get("email_remove"):
            return await config.clear_email(db, actor, tenant_id)
        ca_pem = values.get("smtp_ca_pem", "").strip()
        return await config.configure_email(
            db,
            actor,
            tenant_id,
            host=values.get("smtp_host", ""),
            port=forms.whole_number(values.get("smtp_port", ""), "The SMTP port"),
            security=values.get("smtp_security", "starttls"),
            user=values.get("smtp_user", ""),
            password=values.get("smtp_password") or None,
            sender=values.get("smtp_from", ""),
            ca_pem=ca_pem + "\n" if ca_pem else None,
            clear=("caPem",) if values.get("system_cas") else (),
        )

    _saved, refusal = await forms.attempt(db, save)
    if refusal is None:
        return web.redirect(f"/admin/tenants/{tenant_id}/delivery?saved=1")
    return await _page(
        request, db, tenant_id, values=_kept(values), refusal=refusal, refused_form="email"
    )


@router.post("/tenants/{tenant_id}/delivery/sms")
async def sms_save(
    request: Request, tenant_id: str, signed_in: web.CheckedForm, db: Database
) -> Response:
    values = await _form(request)
    actor = web.actor(request, signed_in)
    codes = forms.lines(values.get("allowed_country_codes", "").replace(",", "\n"))

    def text(name: str) -> str | None:
        """A field's value; None when it is empty (keep what is stored)."""
        return values.get(name, "").strip() or None

    sid = text("twilio_account_sid")
    change = config.SmsChange(
        webhook_url=text("webhook_url"),
        webhook_secret=text("webhook_secret"),
        twilio_account_sid=sid,
        twilio_auth_token=text("twilio_auth_token") if sid else None,
        twilio_from=text("twilio_from") if sid else None,
        twilio_base_url=text("twilio_base_url") if sid else None,
        allowed_country_codes=codes,
        clear_webhook=not values.get("webhook_url", "").strip(),
        clear_twilio=not sid,
        clear_log=bool(values.get("sms_log_stop")),
    )

    async def save() -> str | None:
        _tenant, made = await config.configure_sms(db, actor, tenant_id, change)
        return made

    made, refusal = await forms.attempt(db, save)
    if refusal is not None:
        return await _page(
            request, db, tenant_id, values=_kept(values), refusal=refusal, refused_form="sms"
        )
    if made is not None:
        return await _page(request, db, tenant_id, made_secret=made)
    return web.redirect(f"/admin/tenants/{tenant_id}/delivery?saved=1")

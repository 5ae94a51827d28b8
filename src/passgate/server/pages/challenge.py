"""The hosted challenge page: the `url` a track returns, `<public url>/challenge?token=...`.

One route. `hosted_page.open_challenge` decides what the page offers; this module picks the
language, fills in the template and sets the headers. In popup mode (`&mode=popup`, which
Authsignal's browser SDK appends for both its iframe overlay and its window) the tenant's web
origins may frame the page, and its script reports to them; otherwise nobody may frame it.

After a recovery the page may offer a push device instead of a passkey: a form that POSTs
the verify's access token to the push enrolment page (pages/push_links.py) in a new tab, so
this page stays to hand the token back to the app when the user presses Done."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from passgate.server.database import Database
from passgate.server.pages.rendering import render
from passgate.server.pages.translations import accepted_languages, choose_language, texts
from passgate.server.services import branding, hosted_page, push_links
from passgate.server.services.hosted_page import HostedChallenge, PageUnavailable, TenantRow
from passgate.server.settings import Settings

router = APIRouter(include_in_schema=False)

# The page may run WebAuthn itself (framed, the SDK's iframe also allows it); nothing else.
PERMISSIONS_POLICY = (
    "publickey-credentials-get=(self), publickey-credentials-create=(self), "
    "camera=(), microphone=(), geolocation=(), payment=()"
)


@router.get("/challenge")
async def challenge_page(request: Request, db: Database) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    popup = request.query_params.get("mode") == "popup"
    token = request.query_params.get("token")
    try:
        page = await hosted_page.open_challenge(db, token, public_origin=settings.public_origin)
    except PageUnavailable as refusal:
        return _refusal_page(request, refusal, popup=popup)
    language = choose_language(
        [page.locale, *accepted_languages(request.headers.get("accept-language"))]
    )
    return render(
        request,
        "challenge.html",
        _challenge_context(page, settings, language=language, popup=popup),
        frame_ancestors=page.web_origins if popup else (),
        headers={"Permissions-Policy": PERMISSIONS_POLICY},
    )


def _page_texts(
    language: str, tenant: TenantRow | None, public_origin: str | None
) -> dict[str, str]:
    return texts(
        language,
        tenant=tenant.name if tenant else "",
        rp_id=tenant.rp_id if tenant else "",
        host=urlsplit(public_origin).netloc if public_origin else "",
    )


def _challenge_context(
    page: HostedChallenge, settings: Settings, *, language: str, popup: bool
) -> dict[str, Any]:
    text = _page_texts(language, page.tenant, settings.public_origin)
    unavailable = page.passkey_unavailable
    # A remove:authenticators token whose action needs no challenge: only the list.
    manage_only = page.removable is not None and not (
        page.enrol or page.sign_in or page.push or page.fallbacks
    )
    heading = text["title_enrol"] if page.enrol else text["title_sign_in"]
    return {
        "lang": language,
        "text": text,
        "page": page,
        "popup": popup,
        "tenant_name": page.tenant.name,
        "heading": text["manage_heading"] if manage_only else heading,
        "manage_only": manage_only,
        "unavailable": text[f"unavailable_{unavailable}"] if unavailable else None,
        "pending_push": page.pending_push if page.push else None,
        "push_enrolment_path": f"{_public_path(settings)}{push_links.PAGE_PATH}/new",
        "data": _script_data(page, settings, text, popup=popup, manage_only=manage_only),
        **_accent_context(page.tenant),
    }


def _script_data(
    page: HostedChallenge,
    settings: Settings,
    text: dict[str, str],
    *,
    popup: bool,
    manage_only: bool,
) -> dict[str, Any]:
    """What the page's script needs, embedded as JSON (the CSP allows no inline script)."""
    pending = page.pending_push if page.push else None
    return {
        "kind": "challenge",
        "popup": popup,
        "api": _api_base(settings),
        "actionCode": page.action.action_code,
        "offers": {"enrol": page.enrol, "signIn": page.sign_in, "push": page.push},
        "fallbacks": [fallback.method for fallback in page.fallbacks],
        # After one of these (from "I lost my device") the page offers a new passkey.
        "recoveryMethods": list(page.recovery_methods),
        # ... or, instead, a push device (a QR code in a new tab).
        "pushEnrolment": page.push_enrolment,
        "passkeysAvailable": page.passkey_unavailable is None,
        # A remove:authenticators token: its list is shown once the user has confirmed.
        "manageAfter": page.removable is not None and not manage_only,
        "credentialIds": list(page.credential_ids),
        "push": {
            "challengeId": pending.challenge_id,
            "verificationCode": pending.verification_code,
            "expiresAt": pending.expires_at,
        }
        if pending
        else None,
        # Lets the script read the server's expiry times with its own clock.
        "serverTime": int(time.time() * 1000),
        "redirectUrl": page.redirect_url,
        "origins": list(page.web_origins),
        "text": text,
    }


def _refusal_page(request: Request, refusal: PageUnavailable, *, popup: bool) -> HTMLResponse:
    """A plain message with the refusal's 4xx status. Framed by, and reported to, the
    tenant's pages only when the token was verifiably the tenant's."""
    settings: Settings = request.app.state.settings
    tenant = refusal.tenant
    language = choose_language(accepted_languages(request.headers.get("accept-language")))
    text = _page_texts(language, tenant, settings.public_origin)
    origins = hosted_page.origins_for_messages(tenant, popup)
    data = {
        "kind": "refusal",
        "popup": popup and bool(origins),
        "origins": list(origins),
        "errorCode": refusal.error_code,
        "statusCode": refusal.status_code,
    }
    context = {
        "lang": language,
        "text": text,
        "tenant_name": tenant.name if tenant else None,
        "message": text.get(refusal.error_code, text["invalid_token"]),
        "popup": popup,
        "data": data,
        **(_accent_context(tenant) if tenant else {}),
    }
    return render(
        request,
        "challenge_refused.html",
        context,
        status_code=refusal.status_code,
        frame_ancestors=origins,
    )


def _accent_context(tenant: TenantRow) -> dict[str, Any]:
    accent = branding.accent(tenant)
    return {"accent_color": accent.color if accent else None, "accent": accent}


def _api_base(settings: Settings) -> str:
    """The Client API as a path on Passgate's own origin (the page calls nothing else)."""
    return f"{_public_path(settings)}/v1/client"


def _public_path(settings: Settings) -> str:
    """The public URL's path (empty at the root): where Passgate's routes are on its origin."""
    return urlsplit(settings.public_url).path.rstrip("/") if settings.public_url else ""

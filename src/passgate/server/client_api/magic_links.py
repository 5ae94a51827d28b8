"""Email magic link routes of the Client API (ML1-ML3), all with the Bearer token: enrol an
address, send a link to the enrolled one, and the poll that finalizes a confirmed link
(docs/magic-links.md). The link's own page is pages/magic_link.py."""

from __future__ import annotations

from fastapi import APIRouter, Request

from passgate.server.client_api.auth import CachedTokenCaller, TokenCaller
from passgate.server.database import Database
from passgate.server.forwarded import client_ip
from passgate.server.schemas import AuthenticatorResponse, Email, WireModel
from passgate.server.services import magic_links
from passgate.server.services.delivery import DeliveryNotConfigured, Messenger
from passgate.server.services.errors import InvalidRequest
from passgate.server.settings import Settings
from passgate.server.views import authenticator_response

router = APIRouter(tags=["email magic links"])


class EmailMagicLinkEnrollRequest(WireModel):
    email: Email


class EnrollResponse(WireModel):
    user_authenticator_id: str
    user_id: str


class ChallengeResponse(WireModel):
    challenge_id: str


class FinalizeResponse(WireModel):
    is_verified: bool
    access_token: str | None = None
    failure_reason: str | None = None
    # Only when the link completed an enrolment.
    user_authenticator: AuthenticatorResponse | None = None


def _messenger(request: Request) -> Messenger:
    messenger = getattr(request.app.state, "messenger", None)
    if not isinstance(messenger, Messenger):
        raise DeliveryNotConfigured("This server is not set up to send messages.")
    return messenger


def _public_url(request: Request) -> str:
    """Where the link's page is: the configured public URL, as the track's `url` uses. Never
    the request's Host header: a forged one would mail the user a link, secret and all, to
    the forger's site."""
    settings: Settings = request.app.state.settings
    if not settings.public_url:
        raise InvalidRequest(
            "Email magic links need Passgate's public URL (PASSGATE_PUBLIC_URL): the link "
            "points there."
        )
    return settings.public_url


@router.post("/user-authenticators/email-magic-link", response_model_exclude_none=True)
async def enroll(
    body: EmailMagicLinkEnrollRequest, request: Request, caller: TokenCaller, db: Database
) -> EnrollResponse:
    assert caller.claims is not None
    added = await magic_links.enroll(
        db,
        caller.tenant,
        caller.claims,
        _messenger(request),
        email=body.email,
        public_url=_public_url(request),
        client_ip=client_ip(request),
    )
    return EnrollResponse(user_authenticator_id=added.id, user_id=added.user_id)


@router.post("/challenge/email-magic-link")
async def challenge(request: Request, caller: TokenCaller, db: Database) -> ChallengeResponse:
    assert caller.claims is not None
    link_id = await magic_links.challenge(
        db,
        caller.tenant,
        caller.claims,
        _messenger(request),
        public_url=_public_url(request),
        client_ip=client_ip(request),
    )
    return ChallengeResponse(challenge_id=link_id)


@router.post("/verify/email-magic-link/finalize", response_model_exclude_none=True)
async def finalize(request: Request, caller: CachedTokenCaller, db: Database) -> FinalizeResponse:
    """Polled every second while the link waits: its read runs in a read-only unit of work of
    its own (and the caller's tenant comes from the cache), so a pending poll never touches
    the request's writing one; that does the writes once the link has been confirmed."""
    assert caller.claims is not None
    async with request.app.state.engines.transaction(read_only=True) as reader:
        polled = await magic_links.poll(
            reader, caller.tenant, caller.claims, caller.recheck(reader)
        )
    done = polled.answer
    if done is None:
        assert polled.link is not None
        messenger = getattr(request.app.state, "messenger", None)
        done = await magic_links.settle(
            db,
            polled.tenant,
            polled.claims,
            polled.link,
            messenger if isinstance(messenger, Messenger) else None,
        )
    return FinalizeResponse(
        is_verified=done.is_verified,
        access_token=done.access_token,
        failure_reason=done.failure_reason,
        user_authenticator=None
        if done.authenticator is None
        else authenticator_response(done.authenticator),
    )

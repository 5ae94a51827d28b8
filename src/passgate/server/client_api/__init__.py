"""The Client API (`/v1/client/...`), called by apps through any Authsignal client SDK."""

from fastapi import APIRouter

from passgate.server.client_api import (
    magic_links,
    otp,
    passkeys,
    public,
    push,
    push_links,
    push_web,
    recovery,
    recovery_codes,
    security_keys,
    totp,
)

router = APIRouter(prefix="/client")
router.include_router(public.router)
router.include_router(passkeys.router)
router.include_router(push.router)
router.include_router(push_web.router)
router.include_router(otp.router)
router.include_router(magic_links.router)
router.include_router(push_links.router)
router.include_router(security_keys.router)
router.include_router(totp.router)
router.include_router(recovery_codes.router)
router.include_router(recovery.router)

__all__ = ["router"]

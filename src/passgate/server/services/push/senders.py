"""APNs and FCM (HTTP v1) senders, configured per tenant, addressed by a device's push token.

What is tested here without Apple's and Google's servers: the payloads, APNs token auth (the
ES256 provider token aioapns signs) and the whole FCM exchange against loopback stand-ins
(OAuth token grant and `messages:send`). Real delivery to APNs is not exercised."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import httpx
import structlog
from aioapns import APNs, NotificationRequest, PushType
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account

from passgate.server.store.actions import ActionRow as Action
from passgate.server.store.push import PushChallengeRow as PushChallenge
from passgate.server.store.push import PushDeviceRow as PushDevice

log = structlog.get_logger("passgate.push.senders")

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
TITLE = "Approve sign-in?"


def _body(action: Action) -> str:
    return f"Approve {action.action_code}" + (
        f" from {action.ip_address}" if action.ip_address else ""
    )


def apns_payload(challenge: PushChallenge, action: Action) -> dict[str, Any]:
    """An alert that opens the app; the app then fetches the challenge (P5) itself, so the
    payload carries ids only, never the verification code."""
    return {
        "aps": {"alert": {"title": TITLE, "body": _body(action)}, "sound": "default"},
        "challengeId": challenge.id,
        "actionCode": action.action_code,
        "idempotencyKey": action.idempotency_key,
    }


def fcm_message(push_token: str, challenge: PushChallenge, action: Action) -> dict[str, Any]:
    """An FCM HTTP v1 `messages:send` body; `data` values must be strings."""
    return {
        "message": {
            "token": push_token,
            "notification": {"title": TITLE, "body": _body(action)},
            "data": {
                "challengeId": challenge.id,
                "actionCode": action.action_code,
                "idempotencyKey": action.idempotency_key,
            },
            "android": {"priority": "high"},
        }
    }


def _fingerprint(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


class Senders:
    """One APNs connection pool and one FCM credential per tenant configuration, made on first
    use and kept, so no request pays for key parsing or an OAuth round trip it can reuse."""

    def __init__(self, http: httpx.AsyncClient, fcm_url: str) -> None:
        self._http = http
        self._fcm_url = fcm_url.rstrip("/")
        self._apns: dict[str, APNs] = {}
        self._fcm: dict[str, service_account.Credentials] = {}

    def apns_client(self, config: dict[str, Any]) -> APNs:
        key = _fingerprint(config)
        if key not in self._apns:
            self._apns[key] = APNs(
                key=config["privateKey"],
                key_id=config["keyId"],
                team_id=config["teamId"],
                topic=config["bundleId"],
                use_sandbox=bool(config.get("sandbox", False)),
            )
        return self._apns[key]

    async def send_apns(
        self, config: dict[str, Any], device: PushDevice, challenge: PushChallenge, action: Action
    ) -> bool:
        assert device.push_token
        request = NotificationRequest(
            device_token=device.push_token,
            message=apns_payload(challenge, action),
            notification_id=challenge.id,
            time_to_live=max(int((challenge.expires_at - challenge.created_at).total_seconds()), 1),
            push_type=PushType.ALERT,
        )
        result = await self.apns_client(config).send_notification(request)
        if not result.is_successful:
            log.warning("APNs refused", status=result.status, reason=result.description)
        return bool(result.is_successful)

    async def fcm_token(self, config: dict[str, Any]) -> str:
        key = _fingerprint(config)
        credentials = self._fcm.get(key)
        if credentials is None:
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                config, scopes=[FCM_SCOPE]
            )
            self._fcm[key] = credentials
        if not credentials.valid:
            # google-auth refreshes synchronously (requests); keep it off the event loop.
            await asyncio.to_thread(credentials.refresh, GoogleRequest())
        return str(credentials.token)

    async def send_fcm(
        self, config: dict[str, Any], device: PushDevice, challenge: PushChallenge, action: Action
    ) -> bool:
        assert device.push_token
        token = await self.fcm_token(config)
        response = await self._http.post(
            f"{self._fcm_url}/v1/projects/{config['project_id']}/messages:send",
            json=fcm_message(device.push_token, challenge, action),
            headers={"Authorization": f"Bearer {token}"},
        )
        if not response.is_success:
            log.warning("FCM refused", status=response.status_code, body=response.text[:500])
        return response.is_success

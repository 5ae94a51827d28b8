"""The one-time messages a push device signs (P4 for P5, P7 for P8; docs/wire.md#push-device-keys).

P4 and P7 need only the tenant id and the device's public key, so anyone can call them. Asking
must therefore neither write anything nor change what the device will be asked to sign. The
messages are computed, not stored:

    v1.<expiry>.<serial>.<mac>

- `expiry` (Unix seconds) ends the message's life: every message issued in one 150-second slot
  shares it, 300 s after the slot began, so a message lives 150 to 300 s.
- `serial` counts the messages of that slot (device, purpose) already spent. Everyone who asks
  gets the same message until the device spends it; the next one has the next serial.
- `mac` is an HMAC keyed by a secret derived from the tenant's signing key over the version,
  purpose, tenant id, device id, expiry and serial, so only Passgate makes valid messages and a
  message of one device, tenant or purpose is refused for another.

Spending a message records its digest in `spent_challenges` (kind "push"), and only after the
device's signature over it verified, so only the device can add rows (and they go once
expired). The
digest is a hash of (purpose, tenant, device, expiry) followed by the serial, which lets the
next serial be counted with one indexed range query.

P5 carries only the signature, not the message: the candidates are the next messages of the
current and of the previous slot, one of which the device was given. A per-process hint (the
spent count this process last saw) says which serials to try, so P5 can verify the signature
before any read and then spend the message and read the pending challenge in one statement;
without a usable hint it counts the spent messages first (one more statement)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from passgate.server.services.challenges import message_key
from passgate.server.services.push.errors import TooManyRequests
from passgate.server.store import push as push_store
from passgate.server.store.db import Db
from passgate.server.store.tenants import TenantRow

VERSION = "v1"
SLOT_SECONDS = 150
LIFETIME_SECONDS = 2 * SLOT_SECONDS
# P4's message, signed for P5 (get the pending challenge).
CHALLENGE = "challenge"
# P7's message (also its challengeId), signed for P8 (update the credential).
CREDENTIAL = "credential"

_MAC_BYTES = 24  # 32 characters: the whole message stays within 64, P8's challengeId limit
_SERIAL_DIGITS = 8
_PREFIX_CHARS = 64 - _SERIAL_DIGITS


@dataclass(frozen=True, kw_only=True, slots=True)
class Nonce:
    message: str
    digest: str
    expiry: int

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expiry, UTC)


def _key(tenant: TenantRow) -> bytes:
    """The tenant's nonce key (see services/challenges.message_key)."""
    return message_key(tenant, b"passgate push nonces v1")


def _digest_prefix(tenant: TenantRow, device_id: str, purpose: str, expiry: int) -> str:
    text = f"{VERSION}|{purpose}|{tenant.id}|{device_id}|{expiry}"
    return hashlib.sha256(text.encode()).hexdigest()[:_PREFIX_CHARS]


def _make(tenant: TenantRow, device_id: str, purpose: str, expiry: int, serial: int) -> Nonce:
    signed = f"{VERSION}|{purpose}|{tenant.id}|{device_id}|{expiry}|{serial}".encode()
    mac = hmac.new(_key(tenant), signed, hashlib.sha256).digest()[:_MAC_BYTES]
    return Nonce(
        message=f"{VERSION}.{expiry}.{serial}.{base64.urlsafe_b64encode(mac).decode()}",
        digest=_digest_prefix(tenant, device_id, purpose, expiry) + f"{serial:0{_SERIAL_DIGITS}d}",
        expiry=expiry,
    )


def _slot_expiries(now: datetime) -> tuple[int, int]:
    """The expiry of messages issued now, and of those issued in the previous slot (still
    valid: a slot's messages expire one whole slot after the next slot begins)."""
    start = int(now.timestamp()) // SLOT_SECONDS * SLOT_SECONDS
    return start + LIFETIME_SECONDS, start + SLOT_SECONDS


def _range(tenant: TenantRow, device_id: str, purpose: str, expiry: int) -> tuple[str, str]:
    """The digests of one slot's messages: the device's spent ones of it are counted there."""
    prefix = _digest_prefix(tenant, device_id, purpose, expiry)
    return prefix + "0" * _SERIAL_DIGITS, prefix + "9" * _SERIAL_DIGITS


def _nth(tenant: TenantRow, device_id: str, purpose: str, expiry: int, spent: int) -> Nonce:
    """The first message of this slot that the device has not spent (`spent` of it are)."""
    if spent >= 10**_SERIAL_DIGITS:
        raise TooManyRequests("Too many signed requests from this device; try again later.")
    return _make(tenant, device_id, purpose, expiry, spent)


async def issue(db: Db, tenant: TenantRow, device_id: str, purpose: str, now: datetime) -> str:
    """The message for the device to sign now (P4, P7). It writes nothing."""
    expiry = _slot_expiries(now)[0]
    spent = await push_store.count_spent_nonces(db, *_range(tenant, device_id, purpose, expiry))
    note_spent(tenant.id, device_id, purpose, expiry, spent)
    return _nth(tenant, device_id, purpose, expiry, spent).message


@dataclass(frozen=True, kw_only=True, slots=True)
class Outstanding:
    """Where to count the spent messages of the current and the previous slot (P5 counts them
    in its one read, store/push.py), and then which messages a signature without its message
    may sign: at most two."""

    tenant: TenantRow
    device_id: str
    purpose: str
    expiries: tuple[int, int]

    @property
    def ranges(self) -> tuple[tuple[str, str], tuple[str, str]]:
        current, previous = self.expiries
        return (
            _range(self.tenant, self.device_id, self.purpose, current),
            _range(self.tenant, self.device_id, self.purpose, previous),
        )

    def candidates(self, spent: tuple[int, int]) -> list[Nonce]:
        return [
            _nth(self.tenant, self.device_id, self.purpose, expiry, count)
            for expiry, count in zip(self.expiries, spent, strict=True)
        ]


# Search hints, per process: (tenant, device, purpose, expiry) -> how many of that slot's
# messages this process last saw spent. Never decides anything (a message is good when its MAC
# is Passgate's and its digest was not spent yet, which the spending statement decides); it
# only says which serials to try first for a signature that came without its message.
_HINTS: dict[tuple[str, str, str, int], int] = {}
_HINTS_MAX = 100_000
# Serials tried per slot from the hint on (a device spends a handful of messages per slot).
GUESSES = 3


def note_spent(tenant_id: str, device_id: str, purpose: str, expiry: int, count: int) -> None:
    """Remember that `count` of this slot's messages are spent (a search hint)."""
    if len(_HINTS) >= _HINTS_MAX:
        _HINTS.clear()
    key = (tenant_id, device_id, purpose, expiry)
    if _HINTS.get(key, -1) < count:
        _HINTS[key] = count


def guesses(tenant: TenantRow, device_id: str, purpose: str, now: datetime) -> list[Nonce]:
    """Messages a signature that came without its message may sign, without reading the
    database: for the current and the previous slot, the next `GUESSES` serials from the
    hint. A message the device signed was given to it by P4/P7, so any of them is acceptable
    as long as it was not spent (its MAC is Passgate's and the spending insert is unique)."""
    found: list[Nonce] = []
    for expiry in _slot_expiries(now):
        start = _HINTS.get((tenant.id, device_id, purpose, expiry), 0)
        found.extend(
            _make(tenant, device_id, purpose, expiry, serial)
            for serial in range(start, min(start + GUESSES, 10**_SERIAL_DIGITS))
        )
    return found


def serial_of(nonce: Nonce) -> int:
    return int(nonce.message.split(".")[2])


def outstanding(tenant: TenantRow, device_id: str, purpose: str, now: datetime) -> Outstanding:
    return Outstanding(
        tenant=tenant, device_id=device_id, purpose=purpose, expiries=_slot_expiries(now)
    )


def parse(
    tenant: TenantRow, device_id: str, purpose: str, message: str, now: datetime
) -> Nonce | None:
    """The message sent back (P8's challengeId), if Passgate made it for this tenant, device
    and purpose, and it has not expired; None otherwise. Whether it was spent is `spend`'s."""
    parts = message.split(".") if message.isascii() else []
    if len(parts) != 4 or parts[0] != VERSION:
        return None
    expiry, serial = parts[1], parts[2]
    if not (expiry.isascii() and expiry.isdigit() and serial.isascii() and serial.isdigit()):
        return None
    if len(expiry) > 12 or len(serial) > _SERIAL_DIGITS:
        return None
    if not now.timestamp() < int(expiry) <= now.timestamp() + LIFETIME_SECONDS:
        return None
    nonce = _make(tenant, device_id, purpose, int(expiry), int(serial))
    return nonce if hmac.compare_digest(nonce.message.encode(), message.encode()) else None


async def spend(db: Db, tenant: TenantRow, nonce: Nonce) -> bool:
    """Use a message up, once its signature verified: True for exactly one caller."""
    return await push_store.spend_nonce(db, nonce.digest, tenant.id, nonce.expires_at)

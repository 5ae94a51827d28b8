"""Secrets at rest: tenant signing keys, webhook secrets, APNs/FCM private keys and the shared
secrets of users' authenticator apps are stored sealed under one master key, so a copy of the
database without that key reveals none of them.

A sealed value reads `enc:v1:<key id>:<base64url(nonce + AES-256-GCM ciphertext)>`. The key
id is a short hash of the master key, so a process can tell which key a value needs before it
tries; the associated data names the tenant and the field, so a value copied to another
tenant's row, or from one field to another, does not open.

The master key is `PASSGATE_MASTER_KEY` (base64url of 32 random bytes), else the file
`master.key` in `PASSGATE_DATA_DIR`. `prepare` runs when a server starts and before a command
writes a secret: it refuses when the database holds values sealed under a key this process
does not have (so a second host started without the key stops instead of making its own),
makes the key file only when the database holds no sealed value, and seals whatever is
still plain text (databases from before encryption)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from passgate.server.services.errors import PassgateError
from passgate.server.settings import Settings
from passgate.server.store import tenants as tenant_store
from passgate.server.store import totp as totp_store
from passgate.server.store.db import Db, Engines
from passgate.server.store.tenants import TenantRow

# The standard library's logging: `passgate serve` renders it with everything else, and a
# `passgate` command, which configures no logging, shows warnings on stderr only.
log = logging.getLogger("passgate.secrets")

PREFIX = "enc:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "master.key"
# Written before a rotation commits and renamed to `master.key` after; one left behind means a
# rotation stopped in between, and `prepare` finishes it when the database needs that key.
NEXT_KEY_FILE = "master.key.next"
ENV_VAR = "PASSGATE_MASTER_KEY"
PLAINTEXT = "plaintext"

# The fields that hold secrets: the signing key column, and paths in tenants.settings["push"].
SIGNING_KEY = "signing_private_key"
PUSH_SECRETS: tuple[tuple[str, ...], ...] = (
    ("webhook_secret",),
    ("previous_webhook_secret",),
    ("apns", "privateKey"),
    ("fcm", "private_key"),
)
# Secrets kept elsewhere in a tenant's settings (paths from the top of `tenants.settings`):
# the key of one-time code MACs (services/code_macs.py), delivery credentials.
SETTINGS_SECRETS: list[tuple[str, ...]] = [
    ("codeMacKey",),
    ("email", "smtpPassword"),
    ("sms", "webhookSecret"),
    ("sms", "twilio", "authToken"),
]


def totp_field(authenticator_id: str) -> str:
    """The field an authenticator app's shared secret (a row of `totp_secrets`, outside the
    tenant's settings; services/totp.py) is sealed for: a sealed secret copied to another
    app's row does not open. `key_ids_in_use` and `reseal_all` cover these rows too."""
    return f"totp_secrets.{authenticator_id}"


class MasterKeyError(PassgateError):
    """The master key is missing, malformed or not the one the database needs. Its
    description is one line for an operator; a request that meets it is answered 503."""

    status_code = 503
    error_code = "service_unavailable"


@dataclass(frozen=True, slots=True)
class MasterKey:
    secret: bytes
    # Where it came from, for messages: the environment variable or the key file's path.
    source: str

    @property
    def key_id(self) -> str:
        return key_id_of(self.secret)

    @property
    def encoded(self) -> str:
        return base64.urlsafe_b64encode(self.secret).decode().rstrip("=")

    @classmethod
    def generate(cls, source: str = "new") -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES), source)

    @classmethod
    def parse(cls, text: str, source: str) -> MasterKey:
        """A key as written in `PASSGATE_MASTER_KEY` or the key file: base64url of 32 bytes
        (padding optional)."""
        value = text.strip()
        try:
            secret = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) != KEY_BYTES or not value:
            raise MasterKeyError(
                f"{source}: a master key is the base64url of 32 random bytes "
                "(`passgate keys generate` prints one)"
            )
        return cls(secret, source)


def key_id_of(secret: bytes) -> str:
    """12 hex digits naming a key; a hash, so it tells nothing about the key itself."""
    return hashlib.sha256(b"passgate master key id\0" + secret).hexdigest()[:12]


# This process's keys by id. Values are sealed under `_current`; the others only open (a key
# replaced by a rotation, until the process restarts).
_keys: dict[str, MasterKey] = {}
_current: MasterKey | None = None
# Where `_current` came from, to look again when a value needs a key this process lacks.
_settings: Settings | None = None
# Whether `prepare` checked the database against the installed key in this process.
_prepared = False


def install(key: MasterKey, settings: Settings | None = None) -> None:
    """Seal under `key` from now on (opening still accepts every key installed before)."""
    global _current, _settings
    _keys[key.key_id] = key
    _current = key
    if settings is not None:
        _settings = settings


def key_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / KEY_FILE


def load(settings: Settings) -> MasterKey | None:
    """The configured key: `PASSGATE_MASTER_KEY`, else the key file. Never makes one."""
    if settings.master_key is not None:
        return MasterKey.parse(settings.master_key.get_secret_value(), ENV_VAR)
    path = key_file(settings)
    return _read_key_file(path) if path.exists() else None


def _read_key_file(path: Path) -> MasterKey:
    try:
        text = path.read_text()
    except OSError as exc:
        raise MasterKeyError(f"cannot read the master key file {path}: {exc.strerror}") from exc
    return MasterKey.parse(text, str(path))


def write_key_file(path: Path, key: MasterKey) -> None:
    """Write a key file readable by its owner only; refuse to overwrite one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key.encoded + "\n")
        file.flush()
        os.fsync(file.fileno())


def _create_key_file(settings: Settings) -> MasterKey:
    path = key_file(settings)
    key = MasterKey.generate(str(path))
    try:
        write_key_file(path, key)
    except FileExistsError:
        # Another process on this host made it first: use theirs.
        return _read_key_file(path)
    except OSError as exc:
        raise MasterKeyError(f"cannot create the master key file {path}: {exc}") from exc
    log.warning(
        "created master key %s in %s: back it up, without it the tenants' signing keys and "
        "push credentials cannot be read",
        key.key_id,
        path.resolve(),
    )
    return key


def _aad(tenant_id: str, field: str) -> bytes:
    return f"passgate:v1:{tenant_id}:{field}".encode()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def key_id_in(value: str) -> str:
    """The key id a stored value needs, or `PLAINTEXT`."""
    if not is_sealed(value):
        return PLAINTEXT
    return value[len(PREFIX) :].split(":", 1)[0]


def seal_with(key: MasterKey, plaintext: str, *, tenant_id: str, field: str) -> str:
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key.secret).encrypt(nonce, plaintext.encode(), _aad(tenant_id, field))
    body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    return f"{PREFIX}{key.key_id}:{body}"


def seal(plaintext: str, *, tenant_id: str, field: str) -> str:
    """Seal a secret of `tenant_id` stored in `field`, under this process's master key."""
    return seal_with(_current_key(), plaintext, tenant_id=tenant_id, field=field)


def open_sealed(value: str, *, tenant_id: str, field: str) -> str:
    """The secret in a stored value, checked to belong to `tenant_id` and `field`. Cached:
    requests that sign tokens or send pushes pay for a dictionary lookup, not a decryption."""
    return _open_cached(value, tenant_id, field)


@lru_cache(maxsize=4096)
def _open_cached(value: str, tenant_id: str, field: str) -> str:
    if not is_sealed(value):
        raise MasterKeyError(
            f"the {field} of tenant {tenant_id} is stored unencrypted; start the server once "
            "(`passgate serve`) to encrypt it"
        )
    key_id, _, body = value[len(PREFIX) :].partition(":")
    key = _key(key_id)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        opened = AESGCM(key.secret).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(tenant_id, field)
        )
    except (binascii.Error, ValueError, InvalidTag) as exc:
        raise MasterKeyError(
            f"the {field} of tenant {tenant_id} does not open with master key {key_id}: "
            "it was altered or copied from another tenant or field"
        ) from exc
    return opened.decode()


def _current_key() -> MasterKey:
    """The key to seal under: the configured one. A key file is read again each time (seals
    are rare: a new tenant, a changed setting), so a server still running after
    `passgate keys rotate-master` seals under the new key, not the replaced one."""
    settings = _settings or Settings()
    if _current is None or settings.master_key is None:
        key = load(settings)
        if key is None and _current is None:
            raise MasterKeyError(missing_message(settings, None))
        if key is not None and (_current is None or key.key_id != _current.key_id):
            install(key, settings)
    assert _current is not None
    return _current


def _key(key_id: str) -> MasterKey:
    """The installed key with this id. A missing one is looked for again where keys are
    configured: after `passgate keys rotate-master` on this host, a running server picks up
    the new key file instead of failing until it restarts."""
    if key_id not in _keys:
        settings = _settings or Settings()
        configured = load(settings)
        if configured is not None:
            _keys.setdefault(configured.key_id, configured)
            if _current is None:
                install(configured, settings)
        # Only where this process takes its key from: with PASSGATE_MASTER_KEY, no file.
        paths = [] if settings.master_key else [Path(settings.data_dir) / NEXT_KEY_FILE]
        for found in [_read_key_file(path) for path in paths if path.exists()]:
            _keys.setdefault(found.key_id, found)
    if key_id not in _keys:
        log.error("a secret needs master key %s, which this process does not have", key_id)
        raise MasterKeyError(f"This server does not have master key {key_id}, which it needs.")
    return _keys[key_id]


def missing_message(settings: Settings, key_ids: Iterable[str] | None) -> str:
    wanted = f"master key {', '.join(sorted(key_ids))}" if key_ids else "a master key"
    return (
        f"the database's secrets are encrypted under {wanted}, which this host does not have: "
        f"set {ENV_VAR} or copy the key file to {key_file(settings).resolve()} "
        "(see docs/operator-guide.md#master-key)"
    )


# Walking a tenant's secrets, for sealing on write, opening on read, and whole-database steps.

Transform = Callable[[str, str, str], str]


def map_push(stored: Mapping[str, Any], tenant_id: str, transform: Transform) -> dict[str, Any]:
    """A copy of stored push settings with `transform(value, tenant_id, field)` applied to each
    secret in them (the field is `push.<path>`, e.g. `push.apns.privateKey`)."""
    return _map_paths(stored, PUSH_SECRETS, "push.", tenant_id, transform)


def map_settings(stored: Mapping[str, Any], tenant_id: str, transform: Transform) -> dict[str, Any]:
    """A copy of a tenant's settings with `transform` applied to each of its secrets outside
    push (`SETTINGS_SECRETS`; the field is the dotted path, e.g. `codeMacKey`)."""
    return _map_paths(stored, SETTINGS_SECRETS, "", tenant_id, transform)


def _map_paths(
    stored: Mapping[str, Any],
    paths: Iterable[tuple[str, ...]],
    prefix: str,
    tenant_id: str,
    transform: Transform,
) -> dict[str, Any]:
    result = dict(stored)
    for path in paths:
        *parents, leaf = path
        holder: dict[str, Any] | None = result
        for name in parents:
            child = holder.get(name) if holder is not None else None
            if isinstance(child, Mapping) and holder is not None:
                holder[name] = dict(child)
                holder = holder[name]
            else:
                holder = None
        if holder is not None and isinstance(holder.get(leaf), str):
            holder[leaf] = transform(holder[leaf], tenant_id, prefix + ".".join(path))
    return result


def seal_push(settings: Mapping[str, Any], tenant_id: str) -> dict[str, Any]:
    """Push settings as stored: their secrets sealed."""
    return map_push(
        settings, tenant_id, lambda value, tid, field: seal(value, tenant_id=tid, field=field)
    )


def open_push(stored: Mapping[str, Any], tenant_id: str) -> dict[str, Any]:
    """Stored push settings with their secrets opened."""
    return map_push(
        stored, tenant_id, lambda value, tid, field: open_sealed(value, tenant_id=tid, field=field)
    )


def _tenant_values(tenant: TenantRow) -> list[str]:
    found = [tenant.signing_private_key]

    def collect(value: str, _tid: str, _field: str) -> str:
        found.append(value)
        return value

    push = tenant.settings.get("push")
    if isinstance(push, Mapping):
        map_push(push, tenant.id, collect)
    map_settings(tenant.settings, tenant.id, collect)
    return found


def _transformed(tenant: TenantRow, transform: Transform) -> dict[str, Any]:
    """The columns of `tenant` that change when `transform` is applied to each of its
    secrets (none when nothing changes)."""
    changed: dict[str, Any] = {}
    signing_key = transform(tenant.signing_private_key, tenant.id, SIGNING_KEY)
    if signing_key != tenant.signing_private_key:
        changed["signing_private_key"] = signing_key
    settings = map_settings(tenant.settings, tenant.id, transform)
    push = tenant.settings.get("push")
    if isinstance(push, Mapping):
        settings["push"] = map_push(push, tenant.id, transform)
    if settings != tenant.settings:
        changed["settings"] = settings
    return changed


async def _transform_tenants(db: Db, tenant_ids: Iterable[str], transform: Transform) -> None:
    """Apply `transform` to every secret of these tenants. Each row is locked and read afresh
    first (an UPDATE that changes only its version, RETURNING the row): a process that waited
    for the lock sees what the holder wrote, and no one changes the row until this
    transaction ends."""
    for tenant_id in tenant_ids:
        locked = await tenant_store.update_tenant(db, tenant_id, {})
        if locked is None:  # deleted meanwhile
            continue
        changed = _transformed(locked, transform)
        if changed:
            await tenant_store.update_tenant(db, tenant_id, changed)


async def key_ids_in_use(db: Db) -> dict[str, int]:
    """How many stored secrets each key id seals (`PLAINTEXT` for those not yet sealed)."""
    counts: dict[str, int] = {}
    for tenant in await tenant_store.find_tenants(db):
        for key_id in map(key_id_in, _tenant_values(tenant)):
            counts[key_id] = counts.get(key_id, 0) + 1
    for stored in await totp_store.all_secrets(db):
        key_id = key_id_in(stored.secret)
        counts[key_id] = counts.get(key_id, 0) + 1
    return counts


async def prepare(db: Db, settings: Settings, *, seal_plaintext: bool = True) -> MasterKey:
    """Find the master key the database needs, make one only for a database with no sealed
    secret, install it, and (with `seal_plaintext`) seal every secret still stored as plain
    text. Raises `MasterKeyError` (one line for the operator) rather than make a key that
    cannot read what is stored."""
    key, _ = await _prepare(db, settings, seal_plaintext=seal_plaintext)
    return key


async def _prepare(db: Db, settings: Settings, *, seal_plaintext: bool) -> tuple[MasterKey, int]:
    global _prepared
    in_use = set(await key_ids_in_use(db)) - {PLAINTEXT}
    key = load(settings)
    if key is None and not in_use:
        key = _create_key_file(settings)
    missing = in_use - ({key.key_id} if key is not None else set())
    if missing:
        finished = _finish_interrupted_rotation(settings, key, missing)
        if finished is None:
            raise MasterKeyError(missing_message(settings, missing))
        key = finished
    assert key is not None
    install(key, settings)
    _prepared = True
    log.info("master key %s loaded from %s", key.key_id, key.source)
    sealed = await _seal_plaintext(db, key) if seal_plaintext else 0
    if sealed:
        log.warning("encrypted %d secrets stored as plain text (key %s)", sealed, key.key_id)
    return key, sealed


async def prepare_engine(engine: AsyncEngine, settings: Settings) -> MasterKey:
    """`prepare` in its own transaction, for a server's start. When it sealed secrets that
    were plain text, the database is compacted afterwards, so their old copies do not linger
    in free pages (a copy of the file made later does not hold them; older backups do)."""
    async with Engines(engine).transaction() as db:
        key, sealed = await _prepare(db, settings, seal_plaintext=True)
    if sealed:
        await _compact(engine)
    return key


async def _compact(engine: AsyncEngine) -> None:
    """Best effort: a database busy elsewhere is left as it is, with a warning."""
    try:
        await tenant_store.compact(engine)
    except (OSError, sqlite3.Error, SQLAlchemyError) as exc:
        log.warning(
            "could not compact the database after encrypting its secrets (%s): run VACUUM "
            "(SQLite) or VACUUM FULL tenants (PostgreSQL) so old copies do not linger",
            exc,
        )


def _finish_interrupted_rotation(
    settings: Settings, current: MasterKey | None, missing: set[str]
) -> MasterKey | None:
    """A rotation that committed but stopped before renaming its key file left the new key in
    `master.key.next`: if the database needs exactly that key, finish the rename."""
    next_path = Path(settings.data_dir) / NEXT_KEY_FILE
    if settings.master_key is not None or not next_path.exists():
        return None
    candidate = _read_key_file(next_path)
    if missing != {candidate.key_id}:
        return None
    path = key_file(settings)
    if current is not None and path.exists():
        os.replace(path, backup_path(settings, current))
    os.replace(next_path, path)
    log.warning("finished an interrupted master key rotation: %s", path.resolve())
    return MasterKey(candidate.secret, str(path))


def backup_path(settings: Settings, key: MasterKey) -> Path:
    """Where a rotation keeps the key it replaced: database backups made before it need it."""
    return Path(settings.data_dir) / f"{KEY_FILE}.{key.key_id}.old"


async def _seal_plaintext(db: Db, key: MasterKey) -> int:
    """Seal every secret still stored in the clear; the rows are locked first so two
    processes starting together do not seal the same value twice."""
    sealed = 0

    def seal_plain(value: str, tenant_id: str, field: str) -> str:
        nonlocal sealed
        if is_sealed(value):
            return value
        sealed += 1
        return seal_with(key, value, tenant_id=tenant_id, field=field)

    plain = [
        tenant.id
        for tenant in await tenant_store.find_tenants(db)
        if PLAINTEXT in {key_id_in(value) for value in _tenant_values(tenant)}
    ]
    await _transform_tenants(db, plain, seal_plain)
    return sealed


async def reseal_all(db: Db, old: MasterKey, new: MasterKey) -> int:
    """Seal every stored secret under `new` instead of `old` (a master key rotation). The
    caller commits; returns how many secrets were sealed again."""
    _keys[old.key_id] = old
    count = 0

    def reseal(value: str, tenant_id: str, field: str) -> str:
        nonlocal count
        count += 1
        plaintext = open_sealed(value, tenant_id=tenant_id, field=field)
        return seal_with(new, plaintext, tenant_id=tenant_id, field=field)

    every = [tenant.id for tenant in await tenant_store.find_tenants(db)]
    await _transform_tenants(db, every, reseal)
    for stored in await totp_store.all_secrets(db):
        field = totp_field(stored.authenticator_id)
        resealed = reseal(stored.secret, stored.tenant_id, field)
        # A row removed meanwhile is simply gone; a changed secret cannot happen (an app's
        # secret is written once, when it is made).
        await totp_store.reseal(db, stored.authenticator_id, stored.secret, resealed)
    return count


async def ready(db: Db) -> None:
    """Before a secret is written: in a process that has not run `prepare` (a `passgate`
    command), run it now, in the writer's transaction. Secrets still in plain text are left
    to the server's start, which compacts the database after sealing them."""
    if not _prepared:
        await prepare(db, _settings or Settings(), seal_plaintext=False)

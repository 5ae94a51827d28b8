"""A tenant's passkey settings: parsed once per settings version into a `PasskeyPolicy`, which
the relying party checks against, and from which `well_known` makes the files native apps
need (docs/wire.md#native-app-association).

The settings live in the tenant row's `settings` JSON under `"passkeys"`, camelCase:

    {"userVerification": "preferred", "attestation": "none", "attestationRoots": {"packed":
     ["-----BEGIN CERTIFICATE-----..."]}, "requireTrustedAttestation": false,
     "algorithms": ["ES256", "EdDSA", ...], "authenticatorAttachment": null,
     "residentKeyRequired": true, "maxPasskeysPerUser": 10, "iosApps": ["TEAMID.bundle"],
     "androidApps": [{"packageName": "com.example", "sha256CertFingerprints": ["AA:BB:..."]}]}
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from passgate.server.services import attestation, cose_algorithms, origins, tenants
from passgate.server.services.errors import InvalidRequest
from passgate.server.store import credential_algorithms
from passgate.server.store import tenants as tenant_store
from passgate.server.store.db import Db
from passgate.server.store.tenants import TenantRow

SETTINGS_KEY = "passkeys"
FINGERPRINT = re.compile(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")
IOS_APP_ID = re.compile(r"^[A-Z0-9]{10}\.[A-Za-z0-9.\-]+$")
ANDROID_PACKAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")


class AndroidApp(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, frozen=True)

    package_name: str
    sha256_cert_fingerprints: tuple[str, ...]

    @field_validator("package_name")
    @classmethod
    def _package(cls, value: str) -> str:
        if not ANDROID_PACKAGE.match(value):
            raise ValueError(f"{value!r} is not an Android package name such as com.example.app")
        return value

    @field_validator("sha256_cert_fingerprints")
    @classmethod
    def _fingerprints(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        normal = tuple(value.strip().upper() for value in values)
        for value in normal:
            if not FINGERPRINT.match(value):
                raise ValueError(f"{value!r} is not a SHA-256 fingerprint (32 hex pairs with ':')")
        if not normal:
            raise ValueError("an Android app needs at least one SHA-256 signing-cert fingerprint")
        return normal

    def origins(self) -> list[str]:
        """`android:apk-key-hash:<base64url(SHA-256 of the signing cert)>` per fingerprint."""
        return [apk_key_hash_origin(fingerprint) for fingerprint in self.sha256_cert_fingerprints]


class PasskeySettings(BaseModel):
    """What an operator may set per tenant (`passgate tenant passkeys ...`)."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, extra="forbid"
    )

    user_verification: Literal["preferred", "required"] = "preferred"
    attestation: Literal["none", "direct"] = "none"
    attestation_roots: dict[str, list[str]] = Field(default_factory=dict)
    # Refuse passkeys whose attestation does not verify to a root (docs/passkeys.md#attestation).
    require_trusted_attestation: bool = False
    # COSE algorithm names the tenant accepts; stored in the canonical order (ES256 first).
    algorithms: list[str] = Field(
        default_factory=lambda: [a.name for a in cose_algorithms.available()]
    )
    authenticator_attachment: Literal["platform", "cross-platform"] | None = None
    resident_key_required: bool = True
    max_passkeys_per_user: int = Field(default=10, ge=1, le=100)
    ios_apps: list[str] = Field(default_factory=list)
    android_apps: list[AndroidApp] = Field(default_factory=list)

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, values: list[str]) -> list[str]:
        chosen = cose_algorithms.parse_names(values)
        if not chosen:
            raise ValueError("a tenant must accept at least one algorithm")
        return [a.name for a in chosen]

    @field_validator("attestation_roots")
    @classmethod
    def _roots(cls, roots: dict[str, list[str]]) -> dict[str, list[str]]:
        """Each root must be a PEM certificate, for an attestation format Passgate knows."""
        for fmt, pems in roots.items():
            if fmt not in attestation.FORMATS or fmt == "none":
                formats = ", ".join(f for f in attestation.FORMATS if f != "none")
                raise ValueError(f"{fmt!r} is not an attestation format ({formats})")
            for pem in pems:
                try:
                    if not x509.load_pem_x509_certificates(pem.encode()):
                        raise ValueError("no certificate")
                except ValueError as exc:
                    raise ValueError(f"a {fmt} root is not a PEM certificate") from exc
        return roots

    @model_validator(mode="after")
    def _trusted_needs_direct(self) -> PasskeySettings:
        if self.require_trusted_attestation and self.attestation != "direct":
            raise ValueError("requireTrustedAttestation needs attestation 'direct'")
        return self

    @field_validator("ios_apps")
    @classmethod
    def _ios(cls, values: list[str]) -> list[str]:
        for value in values:
            if not IOS_APP_ID.match(value):
                raise ValueError(f"{value!r} is not an iOS app id such as ABCDE12345.com.example")
        return values


@dataclass(frozen=True, kw_only=True, slots=True)
class PasskeyPolicy:
    """Everything the relying party checks for one tenant, ready to use on the request path."""

    rp_id: str
    rp_name: str
    # Web origins from the tenant, then the Android apps' apk-key-hash origins.
    expected_origins: tuple[str, ...]
    user_verification_required: bool
    attestation: Literal["none", "direct"]
    attestation_roots: Mapping[str, Sequence[bytes]] = field(default_factory=dict)
    require_trusted_attestation: bool = False
    # COSE algorithm ids the tenant accepts, in the order options offer them.
    algorithms: tuple[int, ...] = field(
        default_factory=lambda: tuple(a.cose_id for a in cose_algorithms.available())
    )
    authenticator_attachment: str | None
    resident_key_required: bool
    max_passkeys_per_user: int
    ios_apps: tuple[str, ...]
    android_apps: tuple[AndroidApp, ...]
    # Passgate's own origin (its public URL), where the hosted challenge page runs, when the
    # rp id is a registrable suffix of its host; else None and the page offers no passkey.
    hosted_origin: str | None = None

    @property
    def web_origins(self) -> tuple[str, ...]:
        """The tenant's own http(s) origins: the pages that may frame the hosted page."""
        return origins.web_origins(self.expected_origins)


def apk_key_hash_origin(fingerprint: str) -> str:
    digest = bytes.fromhex(fingerprint.replace(":", ""))
    return "android:apk-key-hash:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def read_settings(tenant: TenantRow) -> PasskeySettings:
    return PasskeySettings.model_validate(tenant.settings.get(SETTINGS_KEY) or {})


def validated_settings(changes: Mapping[str, Any], current: PasskeySettings) -> PasskeySettings:
    """`current` with `changes` applied, checked; bad values are an `InvalidRequest`."""
    merged = {**current.model_dump(by_alias=True), **changes}
    try:
        return PasskeySettings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidRequest(f"invalid passkey settings: {problems}") from exc


# Policies by tenant and settings version: parsed once per process, not per request.
_policies: dict[tuple[str, str], PasskeyPolicy] = {}


def policy(tenant: TenantRow, hosted_origin: str | None = None) -> PasskeyPolicy:
    """The tenant's policy. `hosted_origin` is Passgate's own public origin: accepted as the
    hosted page's origin when the tenant's rp id can be used there."""
    version = json.dumps(
        [
            tenant.rp_id,
            tenant.rp_name,
            tenant.origins,
            tenant.settings.get(SETTINGS_KEY),
            hosted_origin,
        ],
        sort_keys=True,
    )
    cached = _policies.get((tenant.id, version))
    if cached is None:
        cached = _build(tenant, read_settings(tenant), hosted_origin)
        if len(_policies) > 10_000:
            _policies.clear()  # old versions of changed tenants; rebuilt on demand
        _policies[(tenant.id, version)] = cached
    return cached


def hosted_origin_for(rp_id: str, public_origin: str | None) -> str | None:
    """`public_origin` when a page there may use passkeys scoped to `rp_id`, else None."""
    host = origins.host_of(public_origin) if public_origin else None
    if host is None or not origins.is_registrable_suffix(rp_id, host):
        return None
    return public_origin


def _build(
    tenant: TenantRow, settings: PasskeySettings, hosted_origin: str | None = None
) -> PasskeyPolicy:
    origins = list(tenant.origins)
    for app in settings.android_apps:
        origins.extend(origin for origin in app.origins() if origin not in origins)
    return PasskeyPolicy(
        rp_id=tenant.rp_id,
        rp_name=tenant.rp_name,
        expected_origins=tuple(origins),
        user_verification_required=settings.user_verification == "required",
        attestation=settings.attestation,
        attestation_roots={
            fmt: [pem.encode() for pem in pems] for fmt, pems in settings.attestation_roots.items()
        },
        require_trusted_attestation=settings.require_trusted_attestation,
        algorithms=tuple(a.cose_id for a in cose_algorithms.parse_names(settings.algorithms)),
        authenticator_attachment=settings.authenticator_attachment,
        resident_key_required=settings.resident_key_required,
        max_passkeys_per_user=settings.max_passkeys_per_user,
        ios_apps=tuple(settings.ios_apps),
        android_apps=tuple(settings.android_apps),
        hosted_origin=hosted_origin_for(tenant.rp_id, hosted_origin),
    )


async def hosted_policies(db: Db, host: str) -> list[PasskeyPolicy]:
    """The policies of every tenant whose relying party id is `host` (port ignored)."""
    rp_id = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    found = await tenant_store.find_tenants_by_rp_id(db, rp_id.lower())
    return [policy(tenant) for tenant in found]


async def update_settings(db: Db, tenant: TenantRow, changes: Mapping[str, Any]) -> PasskeySettings:
    settings = validated_settings(changes, read_settings(tenant))
    await tenants.save_settings(
        db,
        tenant.id,
        {**tenant.settings, SETTINGS_KEY: settings.model_dump(by_alias=True)},
    )
    return settings


async def passkeys_by_algorithm(db: Db, tenant_id: str) -> dict[int, int]:
    """How many of the tenant's passkeys use each COSE algorithm; for rows registered
    before the algorithm was recorded, it is read from the stored COSE key."""
    counts = await credential_algorithms.algorithm_counts(db, tenant_id)
    for key in await credential_algorithms.unrecorded_public_keys(db, tenant_id):
        try:
            algorithm = cose_algorithms.algorithm_of(key)
        except cose_algorithms.CoseKeyError:
            continue  # a key no algorithm can verify: no setting changes its fate
        counts[algorithm] = counts.get(algorithm, 0) + 1
    return counts


async def stranded_passkeys(db: Db, tenant: TenantRow, proposed: PasskeySettings) -> dict[str, int]:
    """For each algorithm the tenant accepts now but `proposed` would not, how many of its
    passkeys use it (their sign-ins would then be refused); only algorithms in use."""
    before = {a.cose_id for a in cose_algorithms.parse_names(read_settings(tenant).algorithms)}
    after = {a.cose_id for a in cose_algorithms.parse_names(proposed.algorithms)}
    counts = await passkeys_by_algorithm(db, tenant.id)
    removed = [algorithm for algorithm in sorted(counts) if algorithm in before - after]
    return dict(zip(cose_algorithms.names(removed), (counts[a] for a in removed), strict=True))

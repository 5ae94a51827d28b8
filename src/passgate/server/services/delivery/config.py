"""A tenant's delivery settings: its SMTP server (`settings["email"]`) and its SMS senders
(`settings["sms"]`), read for sending and changed by the operator (`passgate tenant email`,
`passgate tenant sms`, the console).

Stored (JSON, in tenants.settings):

    email: {smtpHost, smtpPort, smtpSecurity: none|starttls|tls, smtpUser?, smtpPassword?,
            from, caPem?}
    sms:   {webhookUrl?, webhookSecret?, twilio?: {accountSid, authToken, from, baseUrl},
            allowedCountryCodes?}
    messageTemplates: {name: source}   (services/delivery/templates.py; email and SMS)

or, for development only, `email: {transport: "log"}` and `sms: {transport: "log",
allowedCountryCodes?}`: the tenant's messages are written to the server's log instead of being
sent (services/delivery/dev_log.py). Setting an SMTP server, a webhook or Twilio replaces it.

`smtpPassword`, `webhookSecret` and `twilio.authToken` are sealed under the master key
(services/secrets_box.py, which re-seals them on `passgate keys rotate-master`). A CA
certificate is kept as its PEM text, not a path, so every host sending for the tenant trusts
the same one. A change is checked whole before anything is written, then recorded in the
audit log (`tenant.email.changed`, `tenant.sms.changed`) without any secret's value."""

from __future__ import annotations

import re
import secrets
import ssl
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import formataddr, parseaddr
from typing import Any, Literal

from passgate.server.services import audit, secrets_box, tenants
from passgate.server.services.delivery import templates
from passgate.server.services.delivery.addresses import normalise_email, normalise_phone
from passgate.server.services.errors import InvalidRequest
from passgate.server.store.db import Db
from passgate.server.store.tenants import TenantRow

EMAIL = "email"
SMS = "sms"
TWILIO = "twilio"
TEMPLATES = "messageTemplates"
TRANSPORT = "transport"
LOG = "log"
SECURITIES = ("none", "starttls", "tls")
Security = Literal["none", "starttls", "tls"]
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
TWILIO_BASE_URL = "https://api.twilio.com"
WEBHOOK_SECRET_PREFIX = "pg_smssec_"
# Where the secrets are, from the top of tenants.settings (fields of secrets_box.seal).
SMTP_PASSWORD = (EMAIL, "smtpPassword")
WEBHOOK_SECRET = (SMS, "webhookSecret")
TWILIO_TOKEN = (SMS, TWILIO, "authToken")
SECRETS = (SMTP_PASSWORD, WEBHOOK_SECRET, TWILIO_TOKEN)
_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,253}$")
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
MAX_CA_PEM = 64 * 1024
MAX_URL = 2048
MAX_TEXT = 320
MAX_COUNTRY_CODES = 250


@dataclass(frozen=True, kw_only=True, slots=True)
class EmailConfig:
    """A tenant's SMTP server, with its password opened."""

    host: str
    port: int
    security: Security
    sender: str
    user: str | None = None
    password: str | None = None
    ca_pem: str | None = None

    def tls_context(self) -> ssl.SSLContext:
        """Verifies the server against the tenant's CA certificate when it has one, else the
        system's CAs; the host name is checked either way."""
        if self.ca_pem:
            return ssl.create_default_context(cadata=self.ca_pem)
        return ssl.create_default_context()


@dataclass(frozen=True, kw_only=True, slots=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    sender: str
    base_url: str = TWILIO_BASE_URL


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsConfig:
    """A tenant's SMS senders, secrets opened: a signed webhook, Twilio, or both (SMS goes
    through Twilio when it is set; WhatsApp always through the webhook)."""

    webhook_url: str | None = None
    webhook_secret: str | None = None
    twilio: TwilioConfig | None = None

    def sender_for(self, channel: str) -> Literal["webhook", "twilio"] | None:
        if channel == "SMS" and self.twilio is not None:
            return "twilio"
        if self.webhook_url and self.webhook_secret:
            return "webhook"
        return None


def _open(tenant: TenantRow, path: tuple[str, ...], value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return secrets_box.open_sealed(value, tenant_id=tenant.id, field=".".join(path))


def _section(tenant: TenantRow, name: str) -> Mapping[str, Any]:
    found = tenant.settings.get(name)
    return found if isinstance(found, Mapping) else {}


def logs(tenant: TenantRow, kind: str) -> bool:
    """Whether the tenant writes its `kind` messages ("email", or "sms" with WhatsApp) to the
    server's log instead of sending them: the development-only log transport."""
    return _section(tenant, kind).get(TRANSPORT) == LOG


def configured(tenant: TenantRow, kind: str) -> bool:
    """Whether the tenant has any way of delivering its `kind` messages, the log included
    (without opening a secret: no master key needed)."""
    stored = _section(tenant, kind)
    if kind == EMAIL:
        return bool(stored.get("smtpHost")) or logs(tenant, kind)
    return bool(stored.get("webhookUrl") or stored.get(TWILIO)) or logs(tenant, kind)


def email_config(tenant: TenantRow) -> EmailConfig | None:
    stored = _section(tenant, EMAIL)
    if not stored.get("smtpHost") or not stored.get("from"):
        return None
    return EmailConfig(
        host=str(stored["smtpHost"]),
        port=int(stored.get("smtpPort") or DEFAULT_PORTS[stored.get("smtpSecurity", "none")]),
        security=stored.get("smtpSecurity", "none"),
        sender=str(stored["from"]),
        user=stored.get("smtpUser") or None,
        password=_open(tenant, SMTP_PASSWORD, stored.get("smtpPassword")),
        ca_pem=stored.get("caPem") or None,
    )


def sms_config(tenant: TenantRow) -> SmsConfig | None:
    stored = _section(tenant, SMS)
    twilio_stored = stored.get(TWILIO)
    twilio = None
    if isinstance(twilio_stored, Mapping) and twilio_stored.get("accountSid"):
        token = _open(tenant, TWILIO_TOKEN, twilio_stored.get("authToken"))
        twilio = TwilioConfig(
            account_sid=str(twilio_stored["accountSid"]),
            auth_token=token or "",
            sender=str(twilio_stored.get("from") or ""),
            base_url=str(twilio_stored.get("baseUrl") or TWILIO_BASE_URL),
        )
    url = stored.get("webhookUrl") or None
    if url is None and twilio is None:
        return None
    return SmsConfig(
        webhook_url=url,
        webhook_secret=_open(tenant, WEBHOOK_SECRET, stored.get("webhookSecret")),
        twilio=twilio,
    )


def public_email(tenant: TenantRow) -> dict[str, Any] | None:
    """The email settings for display: no password, whether one is set."""
    stored = _section(tenant, EMAIL)
    if logs(tenant, EMAIL):
        return {TRANSPORT: LOG}
    if not stored.get("smtpHost"):
        return None
    return {
        "smtpHost": stored.get("smtpHost"),
        "smtpPort": stored.get("smtpPort"),
        "smtpSecurity": stored.get("smtpSecurity"),
        "smtpUser": stored.get("smtpUser"),
        "smtpPasswordSet": bool(stored.get("smtpPassword")),
        "from": stored.get("from"),
        "caCertificate": _ca_subject(stored.get("caPem")),
    }


def public_sms(tenant: TenantRow) -> dict[str, Any] | None:
    """The SMS settings for display: no secret, whether each is set."""
    stored = _section(tenant, SMS)
    twilio = stored.get(TWILIO)
    if logs(tenant, SMS):
        return {TRANSPORT: LOG, "allowedCountryCodes": stored.get("allowedCountryCodes") or []}
    if not stored.get("webhookUrl") and not isinstance(twilio, Mapping):
        codes = stored.get("allowedCountryCodes")
        return {"allowedCountryCodes": codes} if codes else None
    shown: dict[str, Any] = {
        "webhookUrl": stored.get("webhookUrl"),
        "webhookSecretSet": bool(stored.get("webhookSecret")),
        "allowedCountryCodes": stored.get("allowedCountryCodes") or [],
    }
    if isinstance(twilio, Mapping):
        shown["twilio"] = {
            "accountSid": twilio.get("accountSid"),
            "authTokenSet": bool(twilio.get("authToken")),
            "from": twilio.get("from"),
            "baseUrl": twilio.get("baseUrl"),
        }
    return shown


def _ca_subject(pem: Any) -> str | None:
    if not isinstance(pem, str) or not pem:
        return None
    from cryptography import x509

    certificates = x509.load_pem_x509_certificates(pem.encode())
    return "; ".join(cert.subject.rfc4514_string() for cert in certificates)


# Checks, each raising InvalidRequest naming the setting.


def check_host(host: str) -> str:
    value = host.strip()
    if not _HOST.match(value):
        raise InvalidRequest(f"smtpHost {host!r} is not a host name or address")
    return value


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise InvalidRequest(f"smtpPort {port} is not between 1 and 65535")
    return port


def check_security(security: str) -> Security:
    if security not in SECURITIES:
        raise InvalidRequest(f"smtpSecurity must be one of {', '.join(SECURITIES)}")
    return security  # type: ignore[return-value]


def check_sender(sender: str) -> str:
    """`no-reply@example.com` or `Example <no-reply@example.com>`, as a From header."""
    name, address = parseaddr(sender.strip())
    if not address or "\n" in sender or "\r" in sender or len(sender) > MAX_TEXT:
        raise InvalidRequest(f"from {sender!r} is not an email address")
    try:
        checked = normalise_email(address)
    except InvalidRequest as exc:
        raise InvalidRequest(f"from: {exc.description}") from exc
    Address(addr_spec=checked)  # the header's own check of the address
    return formataddr((name, checked)) if name else checked


def check_ca_pem(pem: str) -> str:
    """One or more PEM certificates that a TLS context accepts as trust anchors."""
    if len(pem) > MAX_CA_PEM:
        raise InvalidRequest(f"the CA file is larger than {MAX_CA_PEM // 1024} KB")
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidRequest("the CA file holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cadata=pem)
        _ca_subject(pem)
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidRequest(f"the CA file is not a readable PEM certificate: {exc}") from exc
    return pem


def check_url(url: str, what: str) -> str:
    value = url.strip()
    if len(value) > MAX_URL:
        raise InvalidRequest(f"{what} is longer than {MAX_URL} characters")
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise InvalidRequest(f"{what} must be an http(s) URL")
    return value.rstrip("/") if what.endswith("base URL") else value


def check_country_codes(codes: Sequence[str]) -> list[str]:
    checked = []
    if len(codes) > MAX_COUNTRY_CODES:
        raise InvalidRequest(f"allowedCountryCodes: at most {MAX_COUNTRY_CODES} codes")
    for code in codes:
        digits = code.strip().lstrip("+")
        if not digits.isdigit() or not 1 <= len(digits) <= 3:
            raise InvalidRequest(f"allowedCountryCodes: {code!r} is not a country calling code")
        checked.append(f"+{digits}")
    return sorted(set(checked), key=checked.index)


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


def _seal(tenant_id: str, path: tuple[str, ...], value: str) -> str:
    return secrets_box.seal(value, tenant_id=tenant_id, field=".".join(path))


async def _save(
    db: Db, actor: audit.Actor, tenant: TenantRow, name: str, section: dict[str, Any] | None
) -> TenantRow:
    shown = public_email if name == EMAIL else public_sms
    before = shown(tenant) or {}
    settings = dict(tenant.settings)
    if section:
        settings[name] = section
    else:
        settings.pop(name, None)
    saved = await tenants.save_settings(db, tenant.id, settings)
    after = shown(saved) or {}
    changed: dict[str, Any] = audit.changes(before, after)
    if before and not after:
        changed = {"cleared": True}
    # A secret replaced by another shows only as "set" on both sides: say it changed.
    for path in SECRETS:
        if path[0] == name and _stored(tenant, path) != _stored(saved, path):
            changed[".".join(path[1:])] = "changed"
    if changed:
        await audit.record(
            db,
            actor,
            f"tenant.{name}.changed",
            target_type="tenant",
            target_id=tenant.id,
            tenant_id=tenant.id,
            details=changed,
        )
    return saved


def _stored(tenant: TenantRow, path: tuple[str, ...]) -> Any:
    value: Any = tenant.settings
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


async def configure_email(
    db: Db,
    actor: audit.Actor,
    tenant_id: str,
    *,
    host: str | None = None,
    port: int | None = None,
    security: str | None = None,
    user: str | None = None,
    password: str | None = None,
    sender: str | None = None,
    ca_pem: str | None = None,
    clear: Iterable[str] = (),
) -> TenantRow:
    """Change the tenant's SMTP settings: the values given replace the stored ones, the rest
    stay; `clear` names settings to remove ("smtpUser", "smtpPassword", "caPem"). The
    result must name a host and a From address."""
    await secrets_box.ready(db)
    tenant = await tenants.get_tenant(db, tenant_id)
    section = dict(_section(tenant, EMAIL))
    section.pop(TRANSPORT, None)  # an SMTP server replaces the log
    for name in clear:
        section.pop(name, None)
        if name == "smtpUser":
            section.pop("smtpPassword", None)
    if host is not None:
        section["smtpHost"] = check_host(host)
    if security is not None:
        section["smtpSecurity"] = check_security(security)
    section.setdefault("smtpSecurity", "starttls")
    if port is not None:
        section["smtpPort"] = check_port(port)
    section.setdefault("smtpPort", DEFAULT_PORTS[section["smtpSecurity"]])
    if sender is not None:
        section["from"] = check_sender(sender)
    if user is not None:
        if len(user) > MAX_TEXT:
            raise InvalidRequest(f"smtpUser is longer than {MAX_TEXT} characters")
        section["smtpUser"] = user.strip() or None
        if not section["smtpUser"]:
            section.pop("smtpUser")
            section.pop("smtpPassword", None)
    if password is not None:
        if len(password) > MAX_TEXT:
            raise InvalidRequest(f"the SMTP password is longer than {MAX_TEXT} characters")
        if not section.get("smtpUser"):
            raise InvalidRequest("an SMTP password needs an SMTP user (smtpUser)")
        section["smtpPassword"] = _seal(tenant.id, SMTP_PASSWORD, password)
    if ca_pem is not None:
        section["caPem"] = check_ca_pem(ca_pem)
    if not section.get("smtpHost"):
        raise InvalidRequest("the SMTP host (smtpHost) is required")
    if not section.get("from"):
        raise InvalidRequest("the From address (from) is required")
    return await _save(db, actor, tenant, EMAIL, section)


async def clear_email(db: Db, actor: audit.Actor, tenant_id: str) -> TenantRow:
    """Forget the tenant's SMTP settings: it sends no email (codes by email are refused)."""
    tenant = await tenants.get_tenant(db, tenant_id)
    return await _save(db, actor, tenant, EMAIL, None)


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsChange:
    """What `configure_sms` changes (None: keep)."""

    webhook_url: str | None = None
    webhook_secret: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_base_url: str | None = None
    allowed_country_codes: list[str] | None = None
    clear_webhook: bool = False
    clear_twilio: bool = False
    clear_log: bool = False


async def configure_sms(
    db: Db, actor: audit.Actor, tenant_id: str, change: SmsChange
) -> tuple[TenantRow, str | None]:
    """Change the tenant's SMS settings. A webhook set without a secret (and with none stored)
    gets a new one, returned (shown once); otherwise the second value is None."""
    await secrets_box.ready(db)
    tenant = await tenants.get_tenant(db, tenant_id)
    section = dict(_section(tenant, SMS))
    made_secret = None
    if change.clear_webhook:
        section.pop("webhookUrl", None)
        section.pop("webhookSecret", None)
    if change.clear_twilio:
        section.pop(TWILIO, None)
    sender_given = change.webhook_url is not None or change.twilio_account_sid is not None
    if change.clear_log or sender_given:
        section.pop(TRANSPORT, None)  # a real sender replaces the log
    if change.webhook_url is not None:
        section["webhookUrl"] = check_url(change.webhook_url, "the SMS webhook URL")
    if change.webhook_secret is not None:
        if not change.webhook_secret.strip() or len(change.webhook_secret) > MAX_TEXT:
            raise InvalidRequest(f"the SMS webhook secret must be 1 to {MAX_TEXT} characters")
        section["webhookSecret"] = _seal(tenant.id, WEBHOOK_SECRET, change.webhook_secret)
    if section.get("webhookUrl") and not section.get("webhookSecret"):
        made_secret = new_webhook_secret()
        section["webhookSecret"] = _seal(tenant.id, WEBHOOK_SECRET, made_secret)
    twilio_values = (
        change.twilio_account_sid,
        change.twilio_auth_token,
        change.twilio_from,
        change.twilio_base_url,
    )
    if any(value is not None for value in twilio_values):
        section[TWILIO] = _twilio(tenant.id, dict(section.get(TWILIO) or {}), change)
    if change.allowed_country_codes is not None:
        section["allowedCountryCodes"] = check_country_codes(change.allowed_country_codes)
        if not section["allowedCountryCodes"]:
            section.pop("allowedCountryCodes")
    saved = await _save(db, actor, tenant, SMS, section)
    return saved, made_secret


def _twilio(tenant_id: str, twilio: dict[str, Any], change: SmsChange) -> dict[str, Any]:
    if change.twilio_account_sid is not None:
        if not _SID.match(change.twilio_account_sid.strip()):
            raise InvalidRequest("the Twilio account SID is letters and digits (AC...)")
        twilio["accountSid"] = change.twilio_account_sid.strip()
    if change.twilio_auth_token is not None:
        if not change.twilio_auth_token.strip() or len(change.twilio_auth_token) > MAX_TEXT:
            raise InvalidRequest(f"the Twilio auth token must be 1 to {MAX_TEXT} characters")
        twilio["authToken"] = _seal(tenant_id, TWILIO_TOKEN, change.twilio_auth_token.strip())
    if change.twilio_from is not None:
        twilio["from"] = normalise_phone(change.twilio_from)
    if change.twilio_base_url is not None:
        twilio["baseUrl"] = check_url(change.twilio_base_url, "the Twilio base URL")
    twilio.setdefault("baseUrl", TWILIO_BASE_URL)
    for key, what in (
        ("accountSid", "account SID"),
        ("authToken", "auth token"),
        ("from", "From number"),
    ):
        if not twilio.get(key):
            raise InvalidRequest(f"the Twilio sender needs its {what}")
    return twilio


async def clear_sms(db: Db, actor: audit.Actor, tenant_id: str) -> TenantRow:
    """Forget the tenant's SMS senders (its allowed country codes stay)."""
    tenant = await tenants.get_tenant(db, tenant_id)
    kept = {
        key: value for key, value in _section(tenant, SMS).items() if key == "allowedCountryCodes"
    }
    return await _save(db, actor, tenant, SMS, kept or None)


async def use_log(db: Db, actor: audit.Actor, tenant_id: str, kind: str) -> TenantRow:
    """Development only: write the tenant's `kind` messages ("email" or "sms") to the server's
    log instead of sending them, in place of its SMTP server or SMS senders (an SMS's allowed
    countries stay)."""
    tenant = await tenants.get_tenant(db, tenant_id)
    kept = {
        key: value for key, value in _section(tenant, kind).items() if key == "allowedCountryCodes"
    }
    return await _save(db, actor, tenant, kind, {**kept, TRANSPORT: LOG})


def message_templates(tenant: TenantRow) -> dict[str, str]:
    """The tenant's own templates by name (services/delivery/templates.py)."""
    found = tenant.settings.get(TEMPLATES)
    return dict(found) if isinstance(found, Mapping) else {}


async def set_templates(
    db: Db, actor: audit.Actor, tenant_id: str, sources: Mapping[str, str]
) -> TenantRow:
    """Replace the tenant's templates with `sources` (empty: use the built-in ones)."""
    tenant = await tenants.get_tenant(db, tenant_id)
    checked = templates.check_overrides(sources)
    before = message_templates(tenant)
    settings = dict(tenant.settings)
    if checked:
        settings[TEMPLATES] = checked
    else:
        settings.pop(TEMPLATES, None)
    saved = await tenants.save_settings(db, tenant.id, settings)
    if checked != before:
        changed = sorted(
            name for name in {*before, *checked} if before.get(name) != checked.get(name)
        )
        await audit.record(
            db,
            actor,
            "tenant.templates.changed",
            target_type="tenant",
            target_id=tenant.id,
            tenant_id=tenant.id,
            details={"changed": changed, "templates": sorted(checked)},
        )
    return saved

"""The files that tie native apps to a relying party, made from tenants' passkey settings, and
the comparison `passgate doctor` makes against files hosted elsewhere
(docs/wire.md#native-app-association)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from passgate.server.services import passkey_policy
from passgate.server.services.passkey_policy import PasskeyPolicy
from passgate.server.store import tenants as tenant_store
from passgate.server.store.db import Db

GET_LOGIN_CREDS = "delegate_permission/common.get_login_creds"
HANDLE_ALL_URLS = "delegate_permission/common.handle_all_urls"
ASSET_LINK_RELATIONS = [HANDLE_ALL_URLS, GET_LOGIN_CREDS]
AASA = "apple-app-site-association"
ASSET_LINKS = "assetlinks.json"


async def hosted_policies(db: Db, host: str) -> list[PasskeyPolicy]:
    """The passkey policies of every tenant whose relying party id is `host` (port ignored):
    one read of the tenants with that rp id."""
    rp_id = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    found = await tenant_store.find_tenants_by_rp_id(db, rp_id.lower())
    return [passkey_policy.policy(tenant) for tenant in found]


def apple_app_site_association(policies: Sequence[PasskeyPolicy]) -> dict[str, Any]:
    apps = sorted({app for policy in policies for app in policy.ios_apps})
    return {"webcredentials": {"apps": apps}}


def asset_links(policies: Sequence[PasskeyPolicy]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for app in (app for policy in policies for app in policy.android_apps):
        statement = {
            "relation": ASSET_LINK_RELATIONS,
            "target": {
                "namespace": "android_app",
                "package_name": app.package_name,
                "sha256_cert_fingerprints": list(app.sha256_cert_fingerprints),
            },
        }
        if statement not in statements:
            statements.append(statement)
    return statements


@dataclass(frozen=True, slots=True)
class Fetched:
    """What `https://<host>/.well-known/<name>` answered."""

    url: str
    status: int
    redirected: bool
    content_type: str
    body: Any  # parsed JSON, or None when it was not JSON


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    message: str


def diagnose(
    policy: PasskeyPolicy, host: str, aasa: Fetched | None, links: Fetched | None
) -> list[Finding]:
    """Line by line, what in the hosted files does (and does not) match the tenant."""
    findings = [_check(host == policy.rp_id, f"host {host} is the relying party id {policy.rp_id}")]
    if aasa is not None:
        findings += _check_fetch(aasa) + _diagnose_aasa(policy, aasa.body)
    if links is not None:
        findings += _check_fetch(links) + _diagnose_links(policy, links.body)
    return findings


def _check(ok: bool, message: str) -> Finding:
    return Finding(ok, message)


def _check_fetch(fetched: Fetched) -> list[Finding]:
    return [
        _check(fetched.status == 200, f"{fetched.url} answers 200 (got {fetched.status})"),
        _check(not fetched.redirected, f"{fetched.url} is served without a redirect"),
        _check(
            fetched.content_type.split(";")[0].strip() == "application/json",
            f"{fetched.url} is served as application/json (got {fetched.content_type or 'none'})",
        ),
        _check(fetched.body is not None, f"{fetched.url} is valid JSON"),
    ]


def _diagnose_aasa(policy: PasskeyPolicy, body: Any) -> list[Finding]:
    section = body.get("webcredentials") if isinstance(body, dict) else None
    hosted = section.get("apps") if isinstance(section, dict) else None
    if not isinstance(hosted, list):
        return [_check(False, f"{AASA} has a webcredentials.apps list")]
    findings = [_check(app in hosted, f"{AASA} lists iOS app {app}") for app in policy.ios_apps]
    findings += [
        _check(False, f"{AASA} lists {app}, which the tenant does not know")
        for app in hosted
        if app not in policy.ios_apps
    ]
    return findings


def _diagnose_links(policy: PasskeyPolicy, body: Any) -> list[Finding]:
    if not isinstance(body, list):
        return [_check(False, f"{ASSET_LINKS} is a JSON list of statements")]
    by_package: dict[str, tuple[set[str], set[str]]] = {}
    for statement in body:
        target = statement.get("target") if isinstance(statement, dict) else None
        if not isinstance(target, dict) or target.get("namespace") != "android_app":
            continue
        relations, prints = by_package.setdefault(str(target.get("package_name")), (set(), set()))
        relations.update(statement.get("relation") or [])
        prints.update(str(p).upper() for p in target.get("sha256_cert_fingerprints") or [])
    findings: list[Finding] = []
    for app in policy.android_apps:
        hosted = by_package.get(app.package_name)
        findings.append(_check(hosted is not None, f"{ASSET_LINKS} has {app.package_name}"))
        if hosted is None:
            continue
        relations, prints = hosted
        for relation in ASSET_LINK_RELATIONS:
            findings.append(
                _check(relation in relations, f"{app.package_name} is granted {relation}")
            )
        for fingerprint in app.sha256_cert_fingerprints:
            findings.append(
                _check(fingerprint in prints, f"{app.package_name} has fingerprint {fingerprint}")
            )
    known = {app.package_name for app in policy.android_apps}
    findings += [
        _check(False, f"{ASSET_LINKS} has {package}, which the tenant does not know")
        for package in by_package
        if package not in known
    ]
    return findings

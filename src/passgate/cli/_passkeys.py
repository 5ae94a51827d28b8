"""Passkey commands: a tenant's passkey settings, its .well-known files, and a check of the
files hosted on the relying party's own site (`doctor`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from passgate.cli import _database, _output
from passgate.cli._database import CommandError, DatabaseUrl
from passgate.server.services import audit, passkey_policy, tenant_admin, tenants, well_known
from passgate.server.settings import DEFAULT_DATABASE_URL
from passgate.server.store.db import Db

TenantId = Annotated[str, typer.Argument(metavar="TENANT")]


def _android_app(text: str) -> dict[str, Any]:
    package, _, prints = text.partition("=")
    if not package or not prints:
        raise CommandError(f"--android-app {text!r}: write PACKAGE=FINGERPRINT[,FINGERPRINT]")
    return {"packageName": package, "sha256CertFingerprints": prints.split(",")}


def _roots(values: list[str]) -> dict[str, list[str]]:
    roots: dict[str, list[str]] = {}
    for value in values:
        fmt, _, path = value.partition("=")
        if not fmt or not path:
            raise CommandError(f"--attestation-root {value!r}: write FORMAT=PEM_FILE")
        try:
            pem = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"--attestation-root {value!r}: cannot read {path}: {exc}") from exc
        roots.setdefault(fmt, []).append(pem)
    return roots


def tenant_passkeys(
    tenant_id: TenantId,
    user_verification: Annotated[
        str | None, typer.Option(help="preferred or required.", show_default=False)
    ] = None,
    attestation: Annotated[
        str | None, typer.Option(help="none, or direct (with --attestation-root).")
    ] = None,
    attestation_root: Annotated[
        list[str] | None,
        typer.Option(help="FORMAT=PEM_FILE, a trusted root for direct attestation (repeatable)."),
    ] = None,
    authenticator_attachment: Annotated[
        str | None, typer.Option(help="platform, cross-platform, or any.")
    ] = None,
    resident_key_required: Annotated[
        bool | None, typer.Option("--resident-key-required/--resident-key-preferred")
    ] = None,
    max_passkeys: Annotated[
        int | None, typer.Option(help="Most passkeys one user may have (default 10).")
    ] = None,
    ios_app: Annotated[
        list[str] | None,
        typer.Option(help="TEAMID.bundle.id of an iOS app (repeatable; replaces the list)."),
    ] = None,
    android_app: Annotated[
        list[str] | None,
        typer.Option(help="PACKAGE=SHA256_FP[,SHA256_FP] (repeatable; replaces the list)."),
    ] = None,
    clear_apps: Annotated[bool, typer.Option(help="Forget every iOS and Android app.")] = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show or change a tenant's passkey settings (only the options given change)."""
    changes: dict[str, Any] = {} if not clear_apps else {"iosApps": [], "androidApps": []}
    pairs = {
        "userVerification": user_verification,
        "attestation": attestation,
        "residentKeyRequired": resident_key_required,
        "maxPasskeysPerUser": max_passkeys,
        "iosApps": ios_app,
        "androidApps": [_android_app(a) for a in android_app] if android_app else None,
        "attestationRoots": _roots(attestation_root) if attestation_root else None,
    }
    changes.update({key: value for key, value in pairs.items() if value is not None})
    if authenticator_attachment is not None:
        attachment = None if authenticator_attachment == "any" else authenticator_attachment
        changes["authenticatorAttachment"] = attachment

    async def work(db: Db) -> dict[str, Any]:
        settings = await tenant_admin.change_passkeys(db, audit.cli_actor(), tenant_id, changes)
        tenant = await tenants.get_tenant(db, tenant_id)
        shown = settings.model_dump(by_alias=True)
        shown["attestationRoots"] = {f: len(p) for f, p in settings.attestation_roots.items()}
        origins = passkey_policy.policy(tenant).expected_origins
        return {"tenantId": tenant.id, "rpId": tenant.rp_id, **shown, "origins": list(origins)}

    found = _database.run(database_url, work)
    if as_json:
        _output.print_json(found)
    else:
        _output.print_fields({key: json.dumps(value) for key, value in found.items()})


def _files(
    database_url: str, tenant_id: str
) -> tuple[passkey_policy.PasskeyPolicy, dict[str, Any]]:
    async def work(db: Db) -> passkey_policy.PasskeyPolicy:
        return passkey_policy.policy(await tenants.get_tenant(db, tenant_id))

    policy = _database.run(database_url, work, read_only=True)
    return policy, {
        well_known.AASA: well_known.apple_app_site_association([policy]),
        well_known.ASSET_LINKS: well_known.asset_links([policy]),
    }


def wellknown(
    tenant_id: TenantId,
    out: Annotated[
        Path | None, typer.Option(help="Write DIR/.well-known/<file> instead of printing.")
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Print (or write) the tenant's apple-app-site-association and assetlinks.json, to host
    at https://RPID/.well-known/ when Passgate does not serve the relying party's domain."""
    policy, files = _files(database_url, tenant_id)
    for name, content in files.items():
        text = json.dumps(content, indent=2) + "\n"
        if out is None:
            typer.echo(f"# https://{policy.rp_id}/.well-known/{name}\n{text}")
            continue
        path = out / ".well-known" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        typer.echo(f"wrote {path}")


def _fetch(client: httpx.Client, url: str) -> well_known.Fetched:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise CommandError(f"cannot fetch {url}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    content_type = response.headers.get("content-type", "")
    return well_known.Fetched(url, response.status_code, response.is_redirect, content_type, body)


def doctor(
    tenant_id: TenantId,
    url: Annotated[str, typer.Option(help="The relying party's site, e.g. https://example.com")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Fetch the relying party's hosted .well-known files and say, line by line, what does not
    match the tenant's iOS and Android apps. Exits 1 when anything is wrong."""
    policy, _files_wanted = _files(database_url, tenant_id)
    site = httpx.URL(url)
    base = f"{site.scheme}://{site.netloc.decode()}"
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        aasa = _fetch(client, f"{base}/.well-known/{well_known.AASA}")
        links = _fetch(client, f"{base}/.well-known/{well_known.ASSET_LINKS}")
    findings = well_known.diagnose(policy, site.host, aasa, links)
    if site.scheme != "https":
        findings.append(well_known.Finding(False, f"{base} is not https (apps require it)"))
    for finding in findings:
        typer.echo(("ok    " if finding.ok else "WRONG ") + finding.message)
    if not all(finding.ok for finding in findings):
        raise typer.Exit(1)

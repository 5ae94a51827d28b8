"""`passgate tenant webauthn`: which signature algorithms a tenant accepts for passkeys, the
roots attestation chains are verified to, and whether an unverified chain is refused
(docs/passkeys.md#algorithms, docs/passkeys.md#attestation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from passgate.cli import _database, _output
from passgate.cli._database import CommandError, DatabaseUrl
from passgate.server.services import audit, passkey_policy, tenant_admin, tenants
from passgate.server.settings import DEFAULT_DATABASE_URL
from passgate.server.store.db import Db


def _pems(paths: list[Path]) -> list[str]:
    try:
        return [path.read_text() for path in paths]
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read a root certificate: {exc}") from exc


def tenant_webauthn(
    tenant_id: Annotated[str, typer.Argument(metavar="TENANT")],
    algorithms: Annotated[
        str | None,
        typer.Option(help="Accepted algorithms, comma-separated, e.g. ES256,EdDSA,RS256."),
    ] = None,
    android_key_root: Annotated[
        list[Path] | None,
        typer.Option(help="PEM root for android-key attestation chains (repeatable; replaces)."),
    ] = None,
    trusted_attestation: Annotated[
        bool | None,
        typer.Option(
            "--require-trusted-attestation/--accept-untrusted-attestation",
            help="Refuse passkeys whose attestation is not verified to a root (sets "
            "attestation to direct), or accept and record them unverified (the default).",
        ),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show or change the tenant's accepted passkey algorithms and android-key root. Warns,
    with counts, when passkeys in use would no longer be accepted."""
    changes: dict[str, Any] = {}
    if algorithms is not None:
        changes["algorithms"] = algorithms.split(",")
    if trusted_attestation is not None:
        changes["requireTrustedAttestation"] = trusted_attestation
        if trusted_attestation:
            changes["attestation"] = "direct"

    async def work(db: Db) -> tuple[dict[str, Any], dict[str, int]]:
        tenant = await tenants.get_tenant(db, tenant_id)
        current = passkey_policy.read_settings(tenant)
        if android_key_root:
            roots = {**current.attestation_roots, "android-key": _pems(android_key_root)}
            changes["attestationRoots"] = roots
        proposed = passkey_policy.validated_settings(changes, current)
        stranded = await passkey_policy.stranded_passkeys(db, tenant, proposed)
        if changes:
            await tenant_admin.change_passkeys(db, audit.cli_actor(), tenant_id, changes)
        shown = {
            "tenantId": tenant.id,
            "algorithms": proposed.algorithms,
            "attestationRoots": {f: len(p) for f, p in proposed.attestation_roots.items()},
            "requireTrustedAttestation": proposed.require_trusted_attestation,
        }
        return shown, stranded

    shown, stranded = _database.run(database_url, work)
    for name, count in stranded.items():
        typer.echo(
            f"warning: {count} passkey{'s' if count != 1 else ''} of this tenant "
            f"{'use' if count != 1 else 'uses'} {name}, "
            "which it no longer accepts: their sign-ins will be refused",
            err=True,
        )
    if as_json:
        _output.print_json({**shown, "noLongerAccepted": stranded})
    else:
        _output.print_fields({key: str(value) for key, value in shown.items()})

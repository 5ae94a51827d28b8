"""Delivery commands: a tenant's SMTP server (`passgate tenant email`) and SMS senders
(`passgate tenant sms`), shown without their secrets, changed, or cleared (docs/delivery.md).

Secrets are never given on the command line (where `ps` and the shell's history see them):
`--smtp-password-env VAR` names an environment variable that holds the password.

`--log` (development only) has the tenant's messages written to the server's log instead of
sent; every command that sets or shows it warns, since the log then holds working codes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from passgate.cli import _database, _output
from passgate.cli._database import ConfigError, DatabaseUrl
from passgate.server.services import audit, tenants
from passgate.server.services.delivery import config
from passgate.server.settings import DEFAULT_DATABASE_URL
from passgate.server.store.db import Db

TenantId = Annotated[str, typer.Argument(metavar="TENANT")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LOG_HELP = (
    "Development only: write each message, its code or link included, to the server's log "
    "instead of sending it (replaces the {what})."
)


def _env(variable: str | None, what: str) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"{what}: the environment variable {variable} is not set or empty")
    return value


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc


def read_template_dir(directory: Path) -> dict[str, str]:
    """Every template file in `directory` (named as docs/delivery.md#templates says); any
    other file is refused, so a misspelt name does not go unnoticed."""
    if not directory.is_dir():
        raise ConfigError(f"--template-dir: {directory} is not a directory")
    return {
        path.name: _read(path, "--template-dir")
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.startswith(".")
    }


def _show(fields: dict[str, Any] | None, as_json: bool, what: str, tenant_id: str) -> None:
    logged = (fields or {}).get(config.TRANSPORT) == config.LOG
    if as_json:
        _output.print_json(fields or {})
    elif not fields:
        typer.echo(f"{what}: not configured")
    else:
        shown = {**fields, config.TRANSPORT: "log (development only)"} if logged else fields
        _output.print_fields({key: _text(value) for key, value in shown.items()})
    if logged:
        typer.echo(
            f"warning: {tenant_id}'s {what} messages are written to the server's log, codes and "
            "links included, not sent: for development only, never on a server real users "
            "reach.",
            err=True,
        )


def _only(log: bool, changing: bool, what: str) -> None:
    if log and changing:
        raise ConfigError(f"--log replaces the {what}: give it without the options that set them")


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{key}={_text(item)}" for key, item in value.items())
    return "none" if value is None else str(value)


def tenant_email(
    tenant_id: TenantId,
    smtp_host: Annotated[str | None, typer.Option(help="The SMTP server's host name.")] = None,
    smtp_port: Annotated[
        int | None,
        typer.Option(help="Its port (default 587 with starttls, 465 with tls, 25 with none)."),
    ] = None,
    smtp_security: Annotated[
        str | None,
        typer.Option(help="none, starttls (default) or tls (TLS from the first byte)."),
    ] = None,
    smtp_user: Annotated[
        str | None, typer.Option(help="Log in as this user (an empty string: no login).")
    ] = None,
    smtp_password_env: Annotated[
        str | None,
        typer.Option(metavar="VAR", help="The environment variable holding the password."),
    ] = None,
    smtp_from: Annotated[
        str | None,
        typer.Option(help="The From address: no-reply@example.com or 'Name <address>'."),
    ] = None,
    smtp_ca_file: Annotated[
        Path | None,
        typer.Option(help="PEM CA certificate(s) to trust instead of the system's CAs."),
    ] = None,
    system_cas: Annotated[
        bool, typer.Option("--system-cas", help="Forget the CA file: trust the system's CAs.")
    ] = False,
    template_dir: Annotated[
        Path | None,
        typer.Option(help="A directory of templates that replace the tenant's own (all of them)."),
    ] = None,
    default_templates: Annotated[
        bool, typer.Option("--default-templates", help="Forget the tenant's own templates.")
    ] = False,
    clear: Annotated[
        bool, typer.Option("--clear", help="Forget the SMTP settings: send no email.")
    ] = False,
    log: Annotated[bool, typer.Option("--log", help=LOG_HELP.format(what="SMTP settings"))] = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """Show or set the tenant's SMTP server for codes, magic links and notices by email (only
    the options given change; the password is stored encrypted and never shown)."""
    password = _env(smtp_password_env, "--smtp-password-env")
    ca_pem = _read(smtp_ca_file, "--smtp-ca-file") if smtp_ca_file is not None else None
    sources = read_template_dir(template_dir) if template_dir is not None else None
    if default_templates:
        sources = {}
    values = (smtp_host, smtp_port, smtp_security, smtp_user, password, smtp_from, ca_pem)
    changing = any(value is not None for value in values) or system_cas
    _only(log, changing, "SMTP settings")

    async def work(db: Db) -> dict[str, Any]:
        actor = audit.cli_actor()
        if clear:
            await config.clear_email(db, actor, tenant_id)
        if log:
            await config.use_log(db, actor, tenant_id, config.EMAIL)
        if changing:
            await config.configure_email(
                db,
                actor,
                tenant_id,
                host=smtp_host,
                port=smtp_port,
                security=smtp_security,
                user=smtp_user,
                password=password,
                sender=smtp_from,
                ca_pem=ca_pem,
                clear=("caPem",) if system_cas else (),
            )
        if sources is not None:
            await config.set_templates(db, actor, tenant_id, sources)
        tenant = await tenants.get_tenant(db, tenant_id)
        shown = config.public_email(tenant) or {}
        own = sorted(config.message_templates(tenant))
        return {**shown, "templates": own or "built-in"} if shown or own else {}

    _show(_database.run(database_url, work), as_json, "email", tenant_id)


def tenant_sms(
    tenant_id: TenantId,
    webhook_url: Annotated[
        str | None, typer.Option(help="POST signed JSON {phoneNumber, code, ...} here.")
    ] = None,
    webhook_secret_env: Annotated[
        str | None,
        typer.Option(
            metavar="VAR",
            help="The environment variable holding the webhook's signing secret (without it "
            "a new webhook gets a generated secret, printed once).",
        ),
    ] = None,
    twilio_account_sid: Annotated[
        str | None, typer.Option(help="Send SMS through Twilio with this account SID.")
    ] = None,
    twilio_auth_token_env: Annotated[
        str | None,
        typer.Option(metavar="VAR", help="The environment variable holding the auth token."),
    ] = None,
    twilio_from: Annotated[
        str | None, typer.Option(help="The Twilio number SMS come from (E.164).")
    ] = None,
    twilio_base_url: Annotated[
        str | None,
        typer.Option(help=f"Twilio's API base URL (default {config.TWILIO_BASE_URL})."),
    ] = None,
    allowed_country_codes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated country calling codes SMS and WhatsApp may go to, e.g. "
            "+64,+1 (an empty string: all)."
        ),
    ] = None,
    clear_webhook: Annotated[bool, typer.Option("--clear-webhook")] = False,
    clear_twilio: Annotated[bool, typer.Option("--clear-twilio")] = False,
    clear: Annotated[
        bool, typer.Option("--clear", help="Forget every SMS sender: send no SMS.")
    ] = False,
    log: Annotated[
        bool, typer.Option("--log", help=LOG_HELP.format(what="webhook and Twilio"))
    ] = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """Show or set how the tenant sends SMS and WhatsApp codes: a signed webhook (SMS and
    WhatsApp) and/or Twilio (SMS). Secrets are stored encrypted and never shown."""
    codes = None
    if allowed_country_codes is not None:
        codes = [code for code in allowed_country_codes.split(",") if code.strip()]
    change = config.SmsChange(
        webhook_url=webhook_url,
        webhook_secret=_env(webhook_secret_env, "--webhook-secret-env"),
        twilio_account_sid=twilio_account_sid,
        twilio_auth_token=_env(twilio_auth_token_env, "--twilio-auth-token-env"),
        twilio_from=twilio_from,
        twilio_base_url=twilio_base_url,
        allowed_country_codes=codes,
        clear_webhook=clear_webhook,
        clear_twilio=clear_twilio,
    )
    changing = change != config.SmsChange()
    # Only the allowed countries may change beside --log.
    _only(log, change != config.SmsChange(allowed_country_codes=codes), "SMS senders")

    async def work(db: Db) -> tuple[dict[str, Any], str | None]:
        actor = audit.cli_actor()
        made = None
        if clear:
            await config.clear_sms(db, actor, tenant_id)
        if log:
            await config.use_log(db, actor, tenant_id, config.SMS)
        if changing:
            _, made = await config.configure_sms(db, actor, tenant_id, change)
        tenant = await tenants.get_tenant(db, tenant_id)
        return config.public_sms(tenant) or {}, made

    shown, made = _database.run(database_url, work)
    if made is not None:
        shown = {**shown, "webhookSecret": made}
    _show(shown, as_json, "sms", tenant_id)
    if made is not None and not as_json:
        typer.echo("The webhook secret is shown this once: give it to your webhook to verify.")

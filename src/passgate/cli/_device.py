"""`passgate device ...`: this computer as a push authenticator (a desktop approval app).

Needs only the SDK (`pip install passgate`). Every option has a `PASSGATE_*` variable."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import typer

from passgate import (
    AppChallenge,
    AuthsignalResponse,
    AuthsignalSync,
    DeviceKeys,
    ErrorCode,
    read_push_link,
)
from passgate.authenticators import DeviceKeyStore, default_device_keys
from passgate.cli import _output

device_app = typer.Typer(
    help="Approve sign-ins on this computer: a push device for a Passgate tenant.",
    no_args_is_help=True,
)

BaseUrl = Annotated[
    str,
    typer.Option("--base-url", envvar="PASSGATE_BASE_URL", help="The API, including /v1."),
]
TenantId = Annotated[str, typer.Option("--tenant-id", envvar="PASSGATE_TENANT_ID")]
KeyFile = Annotated[
    str | None,
    typer.Option(
        "--key-file",
        envvar="PASSGATE_DEVICE_KEY_FILE",
        help="Keep the device key in this file (default: the OS keyring, else "
        "~/.config/passgate/device-TENANT.pem).",
    ),
]
Passphrase = Annotated[
    str | None,
    typer.Option(
        "--passphrase", envvar="PASSGATE_DEVICE_PASSPHRASE", help="Encrypts the key file."
    ),
]


class DeviceError(typer.Exit):
    """The server (or the network) refused; the message is printed before exiting 1."""

    def __init__(self, response: AuthsignalResponse[Any]) -> None:
        _output.console.print(f"[red]error[/red] {response.error_code}: {response.error}")
        super().__init__(1)


def _client(
    base_url: str, tenant_id: str, key_file: str | None, passphrase: str | None
) -> AuthsignalSync:
    keys: DeviceKeys = (
        DeviceKeyStore(key_file, passphrase=passphrase)
        if key_file
        else default_device_keys(tenant_id, base_url)
    )
    return AuthsignalSync(tenant_id, base_url, device_keys=keys)


@device_app.command()
def enroll(
    token: Annotated[
        str | None, typer.Option(help="A token from your backend's track call.")
    ] = None,
    link: Annotated[
        str | None,
        typer.Option(
            help="A push enrolment link (https://HOST/push-enrolment#token=...), from the "
            "console, the hosted page or your backend; it names the API and tenant itself."
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", envvar="PASSGATE_BASE_URL", help="The API, including /v1."),
    ] = None,
    tenant_id: Annotated[
        str | None, typer.Option("--tenant-id", envvar="PASSGATE_TENANT_ID")
    ] = None,
    key_file: KeyFile = None,
    passphrase: Passphrase = None,
    name: Annotated[str | None, typer.Option(help="How the device is listed.")] = None,
) -> None:
    """Make a device key and enroll it with a token from your backend, or with a link."""
    if (token is None) == (link is None):
        raise typer.BadParameter("give either --token or --link")
    if link is not None:
        try:
            found = read_push_link(link)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--link") from None
        # The link names its API and tenant; given ones win (the API may be reached by
        # another address here), and `watch` later finds the key by the same two.
        base_url, tenant_id = base_url or found.base_url, tenant_id or found.tenant_id
    if not base_url or not tenant_id:
        raise typer.BadParameter("give --base-url and --tenant-id (or PASSGATE_*) with --token")
    with _client(base_url, tenant_id, key_file, passphrase) as client:
        response = client.push.add_credential(token, device_name=name, link=link)
    if response.data is None:
        raise DeviceError(response)
    fields = {"Enrolled": response.data.credential_id, "User": response.data.user_id}
    if link is not None:  # what `watch` needs to be told (or PASSGATE_*)
        fields.update({"API": base_url, "Tenant": tenant_id})
    _output.print_fields(fields)


@device_app.command()
def status(
    base_url: BaseUrl, tenant_id: TenantId, key_file: KeyFile = None, passphrase: Passphrase = None
) -> None:
    """Show the device's credential as the server knows it."""
    with _client(base_url, tenant_id, key_file, passphrase) as client:
        response = client.push.get_credential()
    if not response.ok:
        raise DeviceError(response)
    if response.data is None:
        typer.echo("not enrolled (no device key here)")
        raise typer.Exit(1)
    credential = response.data
    _output.print_fields(
        {
            "Credential": credential.credential_id,
            "User": credential.user_id,
            "Enrolled at": credential.created_at,
            "Last approval": credential.last_authenticated_at or "never",
        }
    )


@device_app.command()
def remove(
    base_url: BaseUrl, tenant_id: TenantId, key_file: KeyFile = None, passphrase: Passphrase = None
) -> None:
    """Remove the device from the server and delete its key, even when offline."""
    with _client(base_url, tenant_id, key_file, passphrase) as client:
        response = client.push.remove_credential()
    if not response.ok:
        raise DeviceError(response)
    typer.echo("removed")


def show(challenge: AppChallenge) -> None:
    expires = f"in {int(challenge.expires_at - time.time())} s" if challenge.expires_at else "?"
    fields = {
        "Action": challenge.action_code,
        "Received": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "Expires": expires,
        "IP address": challenge.ip_address or "unknown",
        "User agent": challenge.user_agent or "unknown",
    }
    fields.update({f"  {key}": value for key, value in (challenge.custom or {}).items()})
    _output.print_fields(fields)


@device_app.command()
def watch(
    base_url: BaseUrl,
    tenant_id: TenantId,
    key_file: KeyFile = None,
    passphrase: Passphrase = None,
    approve_all: Annotated[
        bool, typer.Option("--approve-all", help="Approve every challenge without asking.")
    ] = False,
    verification_code: Annotated[
        str | None,
        typer.Option(help="With --approve-all: the number to send (when number matching is on)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Stop after one challenge.")] = False,
    wait: Annotated[int, typer.Option(min=1, max=60, help="Long-poll length, seconds.")] = 30,
) -> None:
    """Wait for challenges, show each one, and send your answer."""
    with _client(base_url, tenant_id, key_file, passphrase) as client:
        while True:
            response = client.push.get_challenge(wait=wait)
            if response.error_code == ErrorCode.NETWORK_ERROR:
                time.sleep(2)
                continue
            if not response.ok:
                raise DeviceError(response)
            if response.data is None:
                continue
            challenge = response.data
            show(challenge)
            if approve_all:
                approved, code = True, verification_code
            else:
                approved = typer.confirm(f"Approve {challenge.action_code}?", default=False)
                code = (
                    typer.prompt("Number shown on the other screen", default="")
                    if approved
                    else None
                )
            answer = client.push.update_challenge(challenge.challenge_id, approved, code or None)
            if not answer.ok:
                _output.console.print(f"[red]not sent[/red] {answer.error_code}: {answer.error}")
            elif answer.data:
                _output.console.print("[green]approved[/green]")
            else:
                _output.console.print(
                    "[yellow]rejected[/yellow]"
                    + (" (the number did not match)" if approved else "")
                )
            if once:
                return

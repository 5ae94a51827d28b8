"""What a message says: Jinja2 templates, built in (the `templates/` folder beside this module)
and overridable per tenant (`settings["email"]["templates"]`, set with `passgate tenant email
--template-dir`). docs/delivery.md#templates lists the names and their variables.

A message kind (`code`, `magic_link`, `notice`) has three templates: `<kind>.subject`,
`<kind>.txt` (the plain-text body) and `<kind>.html` (the HTML body, autoescaped); SMS and
WhatsApp text is `sms.txt`. For a `locale` such as `fr-CA` the names `<kind>.fr-ca.<part>`,
then `<kind>.fr.<part>`, then `<kind>.<part>` are looked for, the tenant's before the built-in
ones, so a tenant can add a language by giving its templates.

Tenant templates run in Jinja2's sandbox (a template is configuration, and in the console a
tenant's administrator writes it, not the operator). One that fails to render falls back to
the built-in template, with a warning in the log: a bad template never stops a code."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
import structlog
from jinja2.sandbox import SandboxedEnvironment

from passgate.server.services.errors import InvalidRequest

log = structlog.get_logger("passgate.delivery")

KINDS = ("code", "magic_link", "notice")
EMAIL_PARTS = ("subject", "txt", "html")
SMS = "sms.txt"
NAMES = (*(f"{kind}.{part}" for kind in KINDS for part in EMAIL_PARTS), SMS)
MAX_TEMPLATE = 64 * 1024
MAX_TEMPLATES = 60
_LOCALE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})?$")
_NAME = re.compile(
    r"^(?P<kind>[a-z_]+)(?:\.(?P<locale>[a-z]{2,3}(?:-[a-z0-9]{2,8})?))?\.(?P<part>subject|txt|html)$"
)


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _environment(autoescape: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        autoescape=autoescape, keep_trailing_newline=True, undefined=jinja2.Undefined
    )


_TEXT = _environment(False)
_HTML = _environment(True)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> jinja2.Template:
    return (_HTML if html else _TEXT).from_string(source)


@lru_cache(maxsize=64)
def _built_in(name: str) -> str | None:
    path = resources.files(__package__).joinpath("templates", name)
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _candidates(kind: str, part: str, locale: str | None) -> list[str]:
    names = []
    tag = (locale or "").strip().lower().replace("_", "-")
    if _LOCALE.match(tag):
        names.append(f"{kind}.{tag}.{part}")
        if "-" in tag:
            names.append(f"{kind}.{tag.split('-')[0]}.{part}")
    names.append(f"{kind}.{part}")
    return names


def _render(
    kind: str,
    part: str,
    overrides: Mapping[str, str],
    locale: str | None,
    values: Mapping[str, Any],
) -> str:
    html = part == "html"
    names = _candidates(kind, part, locale)
    for name in names:
        source = overrides.get(name)
        if source is None:
            continue
        try:
            return _compiled(source, html).render(values)
        except jinja2.TemplateError as exc:
            log.warning(
                "tenant template failed; using the built-in one", template=name, error=str(exc)
            )
            break
    for name in names:
        source = _built_in(name)
        if source is not None:
            return _compiled(source, html).render(values)
    raise LookupError(f"no template {kind}.{part}")


def render_email(
    kind: str, overrides: Mapping[str, str], locale: str | None, values: Mapping[str, Any]
) -> RenderedEmail:
    """The subject (one line) and both bodies of a message of `kind`."""
    variables = {"locale": locale or "en", **values}
    subject = _render(kind, "subject", overrides, locale, variables)
    return RenderedEmail(
        subject=" ".join(subject.split())[:250],
        text=_render(kind, "txt", overrides, locale, variables),
        html=_render(kind, "html", overrides, locale, variables),
    )


def render_sms(overrides: Mapping[str, str], locale: str | None, values: Mapping[str, Any]) -> str:
    """The text of an SMS or WhatsApp code."""
    text = _render("sms", "txt", overrides, locale, {"locale": locale or "en", **values})
    return text.strip()


def check_overrides(sources: Mapping[str, str]) -> dict[str, str]:
    """A tenant's templates, checked before they are stored: known names (a kind, an optional
    locale, a part), a size limit, and Jinja2 syntax."""
    if len(sources) > MAX_TEMPLATES:
        raise InvalidRequest(f"at most {MAX_TEMPLATES} templates")
    checked = {}
    for name, source in sorted(sources.items()):
        found = _NAME.match(name)
        if (
            found is None
            or found["kind"] not in (*KINDS, "sms")
            or (found["kind"] == "sms" and found["part"] != "txt")
        ):
            raise InvalidRequest(
                f"template {name!r}: the names are <kind>[.<locale>].<part>, kind one of "
                f"{', '.join(KINDS)} (part subject, txt or html) or sms (part txt)"
            )
        if len(source) > MAX_TEMPLATE:
            raise InvalidRequest(f"template {name!r} is larger than {MAX_TEMPLATE // 1024} KB")
        try:
            _compiled(source, found["part"] == "html")
        except jinja2.TemplateSyntaxError as exc:
            raise InvalidRequest(f"template {name!r}, line {exc.lineno}: {exc.message}") from exc
        checked[name] = source
    return checked

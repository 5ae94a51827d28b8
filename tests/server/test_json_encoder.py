"""Could orjson write Passgate's responses without changing the wire?
(docs/performance.md#the-web-stack)

orjson is not a dependency: the measurement found no saving worth it. These checks keep the
facts a later switch would rest on. The values are those src/passgate/server/json_values.py
lets in: text without NUL or lone surrogates, finite numbers, integers within 64 bits,
nesting at most 16 deep, at most 16 KiB as JSON."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from passgate.server import json_values
from passgate.server.schemas import ActionResponse
from passgate.server.services.enums import ActionState

orjson = pytest.importorskip("orjson", reason="orjson is not installed (not a dependency)")

PROPERTY = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
WHEN = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)

text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(json_values.MIN_INT, json_values.MAX_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)


def _values(depth: int) -> st.SearchStrategy[Any]:
    """JSON values whose containers sit at most MAX_DEPTH levels deep, counting from `depth`."""
    if depth == json_values.MAX_DEPTH:
        inner: st.SearchStrategy[Any] = leaves
    else:
        inner = st.deferred(lambda: _values(depth + 1))
    return st.one_of(leaves, st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4))


def _nested(depth: int) -> Any:
    value: Any = {"leaf": [1.5, -(2**63), 2**63 - 1, "\u00e9\U0001f600\u2028", None, True]}
    for level in range(depth - 2):
        value = [value] if level % 2 else {"k": value}
    return value


DEEPEST = _nested(json_values.MAX_DEPTH)


def stdlib(value: Any) -> Any:
    """What Starlette's JSONResponse writes, read back."""
    return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")))


def action(custom: dict[str, Any] | None, ip_address: str | None) -> ActionResponse:
    return ActionResponse(
        action_code="signIn",
        idempotency_key="idem-1",
        state=ActionState.CHALLENGE_REQUIRED,
        state_updated_at=WHEN,
        created_at=WHEN.replace(microsecond=0),
        updated_at=WHEN.astimezone(timezone(timedelta(hours=2))),
        ip_address=ip_address,
        custom=custom,
    )


def test_the_deepest_example_is_at_the_limit() -> None:
    assert json_values.stored_json_problem(DEEPEST) is None
    assert json_values.stored_json_problem([DEEPEST]) is not None


@PROPERTY
@given(_values(1))
@example(DEEPEST)
@example({"big": 2**63 - 1, "small": -(2**63), "tiny": 5e-324, "huge": 1.7976931348623157e308})
def test_orjson_writes_what_the_stdlib_writes(value: Any) -> None:
    assume(json_values.stored_json_problem(value) is None)
    written = orjson.dumps(value)  # default options: none is needed
    assert json.loads(written) == stdlib(value)
    assert orjson.loads(written) == stdlib(value)


@PROPERTY
@given(st.dictionaries(text, _values(2), max_size=6), st.booleans())
def test_a_model_gives_the_same_values_every_way(custom: dict[str, Any], with_ip: bool) -> None:
    """FastAPI's response path today (validate against the response model, then pydantic's
    dump_json), `model_dump_json`, and orjson over `model_dump(mode="json")` agree."""
    assume(json_values.stored_json_problem(custom) is None)
    model = action(custom, "203.0.113.7" if with_ip else None)
    adapter = TypeAdapter(ActionResponse)
    today = adapter.dump_json(adapter.validate_python(model), by_alias=True, exclude_none=True)
    assert model.model_dump_json(by_alias=True, exclude_none=True).encode() == today
    content = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert json.loads(orjson.dumps(content)) == json.loads(today)
    assert ("ipAddress" in json.loads(today)) is with_ip


def test_timestamps_are_written_by_pydantic() -> None:
    """The wire's UTC timestamps end in `Z` (docs/wire.md). Pydantic writes them so; orjson,
    given a datetime itself, writes `+00:00` unless told OPT_UTC_Z. So a switch must let
    pydantic turn datetimes into text (mode="json") before orjson sees them."""
    body = json.loads(action(None, None).model_dump_json(by_alias=True, exclude_none=True))
    assert body["stateUpdatedAt"] == "2026-11-28T10:00:00.123456Z"
    assert body["createdAt"] == "2026-11-28T10:00:00Z"
    assert body["updatedAt"] == "2026-11-28T12:00:00.123456+02:00"
    assert orjson.dumps(WHEN) == b'"2026-11-28T10:00:00.123456+00:00"'
    assert orjson.dumps(WHEN, option=orjson.OPT_UTC_Z) == b'"2026-11-28T10:00:00.123456Z"'


def test_where_orjson_and_the_stdlib_part() -> None:
    """Outside what the input checks let in, the two differ; a switch would need a fallback."""
    for refused in ({"n": 2**64}, {1: "non-string key"}, {"text": "\ud800"}, _nested(300)):
        with pytest.raises(orjson.JSONEncodeError):
            orjson.dumps(refused)
    assert json.dumps({"n": 2**64}) == '{"n": 18446744073709551616}'
    assert orjson.dumps({"x": math.inf}) == b'{"x":null}'  # the stdlib renderer raises
    with pytest.raises(ValueError):
        json.dumps(math.inf, allow_nan=False)

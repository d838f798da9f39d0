"""Whatever a server or gateway answers, every operation returns a result or raises a CrowNestError.

Hypothesis builds the answers from each operation's valid response: the
valid body, the body extended with unknown fields and unknown enum values,
and broken forms (fields dropped or retyped, arbitrary JSON, truncated JSON,
HTML, empty, nested too deeply), under any status code. Nothing may escape as
`KeyError`, `ValueError`, `TypeError`, `JSONDecodeError` or `RecursionError`.
And a valid body with one scalar field of another JSON type (`"exitCode": "zero"`,
`"stdoutTruncated": 0`) is a ResponseValidationError, never a result.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import API_KEY, BASE_URL
from crownest import AsyncCrowNest, AsyncPager, AsyncStream, CrowNest, CrowNestError, ResponseValidationError, SyncPager
from test_endpoints import CASES, Case

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def valid_body(case: Case) -> Any:
    """The case's valid JSON answer (None for an empty, binary or text answer)."""
    try:
        return json.loads(case.response.content)
    except ValueError:
        return None


@st.composite
def extended(draw: st.DrawFn, body: Any) -> Any:
    """The body with unknown fields added and string values (enums included) replaced by unknown ones."""
    if isinstance(body, dict):
        out = {k: draw(extended(v)) for k, v in body.items()}
        out.update(
            draw(
                st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k not in body), ANY_JSON, max_size=3)
            )
        )
        return out
    if isinstance(body, list):
        return [draw(extended(item)) for item in body]
    if isinstance(body, str) and draw(st.booleans()):
        return draw(st.text(min_size=1, max_size=12))
    return body


@st.composite
def broken(draw: st.DrawFn, body: Any) -> Any:
    """The body with one field dropped or replaced by a value of another type, at any depth."""
    if isinstance(body, dict) and body:
        key = draw(st.sampled_from(sorted(body)))
        out = dict(body)
        action = draw(st.sampled_from(["drop", "retype", "descend"]))
        if action == "drop":
            del out[key]
        elif action == "retype":
            out[key] = draw(ANY_JSON)
        else:
            out[key] = draw(broken(body[key]))
        return out
    if isinstance(body, list) and body:
        index = draw(st.integers(0, len(body) - 1))
        return [*body[:index], draw(broken(body[index])), *body[index + 1 :]]
    return draw(ANY_JSON)


def answers(case: Case) -> st.SearchStrategy[httpx.Response]:
    body = valid_body(case)
    statuses = st.sampled_from([case.response.status_code, 200, 201, 204]) | st.integers(100, 599)
    as_json = st.one_of(st.just(body), extended(body), broken(body), ANY_JSON).map(lambda b: json.dumps(b).encode())
    raw = st.one_of(
        as_json.map(lambda text: text[: len(text) // 2]),  # truncated
        st.just(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        st.just(b""),
        st.binary(max_size=40),
        st.sampled_from([b"[" * 100000, b'{"error": {"code": "x", "details": ' + b"[" * 100000]),
    )
    return st.builds(
        lambda status, content: httpx.Response(status, content=content, headers={"Content-Type": "application/json"}),
        statuses.filter(lambda s: s not in (101, 103)),
        as_json | raw,
    )


def other_type(value: Any) -> st.SearchStrategy[Any]:
    """JSON values of a type other than `value`'s (a bool is not an int; an int is a float)."""
    scalars: dict[type, st.SearchStrategy[Any]] = {
        bool: st.booleans(),
        int: st.integers(),
        float: st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
        str: st.text(max_size=8),
    }
    kind = type(value)
    allowed = [s for t, s in scalars.items() if t is not kind and not (kind is float and t is int)]
    return st.one_of(*allowed, st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers()))


def scalar_paths(body: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where `body` holds a str, int, float or bool (not None: nullable fields take None)."""
    if isinstance(body, dict):
        for key, value in body.items():
            yield from scalar_paths(value, (*path, key))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from scalar_paths(value, (*path, index))
    elif body is not None:
        yield path


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(body) if isinstance(body, dict) else list(body)
    copy[path[0]] = replaced(body[path[0]], path[1:], value)
    return copy


RETYPE_CASES = [
    c for c in CASES if c.response.status_code < 300 and list(scalar_paths(valid_body(c))) and c.method != "events"
]


@pytest.mark.parametrize("case", RETYPE_CASES, ids=lambda c: c.id)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_scalar_of_another_type_is_a_validation_error(
    case: Case, data: st.DataObject, gateway: Gateway, sync_client: CrowNest
) -> None:
    body = valid_body(case)
    path = data.draw(st.sampled_from(list(scalar_paths(body))))
    at = body
    for key in path:
        at = at[key]
    wrong = replaced(body, path, data.draw(other_type(at)))
    gateway.answer = httpx.Response(case.response.status_code, json=wrong)
    with pytest.raises(ResponseValidationError):
        consume(getattr(getattr(sync_client, case.resource), case.method)(*case.args, **case.kwargs))


def consume(result: Any) -> Any:
    return list(result) if isinstance(result, SyncPager) else result


async def async_consume(result: Any) -> Any:
    """The awaited result; a pager's or a stream's items, however many (an empty page is a valid answer)."""
    result = await result if inspect.isawaitable(result) else result
    if isinstance(result, AsyncStream):
        async with result:
            return [item async for item in result]
    return [item async for item in result] if isinstance(result, AsyncPager) else result


class Gateway:
    """One respx route whose answer each example sets (clients are built once: each costs ~40 ms of TLS set-up)."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.answer = httpx.Response(500)
        router.route().mock(side_effect=lambda request: self.answer)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with respx.mock(base_url=BASE_URL, using="httpx") as router:
        yield Gateway(router)


@pytest.fixture(scope="module")
def sync_client(gateway: Gateway) -> Iterator[CrowNest]:
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=0) as client:
        yield client


@pytest.fixture
async def shared_async_client(gateway: Gateway) -> AsyncIterator[AsyncCrowNest]:
    async with AsyncCrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=0) as client:
        yield client


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_answer_parses_or_raises_a_crownest_error(
    case: Case, data: st.DataObject, gateway: Gateway, sync_client: CrowNest
) -> None:
    gateway.answer = data.draw(answers(case))
    try:
        consume(getattr(getattr(sync_client, case.resource), case.method)(*case.args, **case.kwargs))
    except CrowNestError as error:
        assert str(error)  # says what went wrong
        assert API_KEY not in str(error) and API_KEY not in repr(error)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_any_answer_parses_or_raises_a_crownest_error_async(
    case: Case, data: st.DataObject, gateway: Gateway, shared_async_client: AsyncCrowNest
) -> None:
    gateway.answer = data.draw(answers(case))
    try:
        await async_consume(
            getattr(getattr(shared_async_client, case.resource), case.method)(*case.args, **case.kwargs)
        )
    except CrowNestError as error:
        assert str(error)

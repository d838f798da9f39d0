"""Checked by `make typecheck` with mypy --strict and pyright (strict), never run: the conventions
users bring from other SDKs are typed. An expected error is a `# type: ignore[code]`, which both
checkers report when it is no longer needed (warn_unused_ignores, reportUnnecessaryTypeIgnoreComment).
"""

import datetime
from typing import Any, assert_type

from crownest import (
    AsyncCommandHandle,
    AsyncCrowNest,
    AsyncPage,
    AsyncSandboxHandle,
    AsyncStream,
    CommandFailedError,
    CommandHandle,
    CrowNest,
    DefaultAsyncHttpxClient,
    DefaultHttpxClient,
    Page,
    PtyHandle,
    RawResponse,
    SandboxHandle,
    StreamedResponse,
)
from crownest.models import Command, CommandStatus, Metadata, PtyEvent, Sandbox


def mapping_access_is_typed_by_wire_name(command: Command, sandbox: Sandbox) -> None:
    assert_type(command["exitCode"], int | None)
    assert_type(command["status"], CommandStatus)
    assert_type(command["startedAt"], datetime.datetime)
    assert_type(command["stdoutTruncated"], bool)
    assert_type(sandbox["id"], str)
    assert_type(sandbox.metadata, Metadata)
    assert_type(sandbox.metadata["job"], str)
    assert_type(command.additional_properties["cpuMs"], Any)
    assert_type(command._request_id, str | None)  # pyright: ignore[reportPrivateUsage]  # as in openai, anthropic


def a_python_name_is_not_a_key(command: Command) -> None:
    command["exit_code"]  # type: ignore[call-overload]


def any_str_is_not_a_key(command: Command, key: str) -> None:
    command[key]  # type: ignore[call-overload]


def results_are_frozen(command: Command) -> None:
    command.status = CommandStatus.KILLED  # type: ignore[misc]


def per_call_options(client: CrowNest) -> None:
    client.templates.list(timeout=5, max_retries=0, extra_headers={"X-A": "b"}, extra_query={"q": 1})
    client.sandboxes.create(template="base", extra_body={"note": "x"})
    client.templates.list(extra_headers={"X-A": 1})  # type: ignore[dict-item]
    quick: CrowNest = client.with_options(timeout=5, max_retries=1, default_headers={"X-Team": "a"})
    del quick


async def async_per_call_options(client: AsyncCrowNest) -> None:
    await client.templates.list(timeout=5, extra_headers={"X-A": "b"})
    quick: AsyncCrowNest = client.with_options(timeout=5)
    del quick


def a_failed_command_carries_the_handle_run_returns(client: CrowNest) -> None:
    try:
        result = client.commands.run("sbx_1", "false", check=True)
    except CommandFailedError as exc:
        result = exc.result
    handle: CommandHandle = result
    print(result.wait().stdout, handle)
    assert_type(CommandFailedError(handle).result, CommandHandle)
    CommandFailedError(client)  # type: ignore[type-var]


async def an_async_failed_command_carries_the_async_handle(client: AsyncCrowNest) -> None:
    try:
        result = await client.commands.run("sbx_1", "false", check=True)
    except CommandFailedError as exc:
        result = exc.result
    handle: AsyncCommandHandle = result
    print((await result.wait()).stdout, handle)
    assert_type(CommandFailedError(handle).result, AsyncCommandHandle)


def raw_responses_are_typed(client: CrowNest) -> None:
    raw = client.with_raw_response.sandboxes.get("sbx_1", timeout=5, extra_headers={"X-A": "b"})
    assert_type(raw, RawResponse[SandboxHandle])
    assert_type(raw.parse(), SandboxHandle)
    assert_type(raw.request_id, str | None)
    assert_type(raw.status_code, int)
    assert_type(client.with_raw_response.files.read("sbx_1", "/a").parse(), bytes)
    client.with_raw_response.sandboxes.get(sandbox="sbx_1")  # type: ignore[call-arg]


async def async_raw_responses_are_typed(client: AsyncCrowNest) -> None:
    raw = await client.with_raw_response.sandboxes.get("sbx_1")
    assert_type(raw.parse(), AsyncSandboxHandle)


def streamed_responses_are_typed(client: CrowNest) -> None:
    with client.with_streaming_response.files.stream("sbx_1", "/a") as response:
        assert_type(response, StreamedResponse[bytes])
        assert_type(response.request_id, str | None)
        for chunk in response:
            assert_type(chunk, bytes)
    client.with_streaming_response.files.read("sbx_1", "/a")  # type: ignore[attr-defined]


def pages_are_typed(client: CrowNest) -> None:
    page = client.sandboxes.list().first_page()
    assert_type(page, Page[SandboxHandle])
    if page.has_next_page():
        assert_type(page.get_next_page(), Page[SandboxHandle])


async def async_pages_are_typed(client: AsyncCrowNest) -> None:
    page = await client.sandboxes.list().first_page()
    assert_type(await page.get_next_page(), AsyncPage[AsyncSandboxHandle])


def default_http_clients() -> None:
    CrowNest(http_client=DefaultHttpxClient(proxy="http://proxy:8080", verify=False))
    AsyncCrowNest(http_client=DefaultAsyncHttpxClient())
    CrowNest(http_client=DefaultAsyncHttpxClient())  # type: ignore[arg-type]


def terminals_are_typed(sandbox: SandboxHandle, asandbox: AsyncSandboxHandle) -> None:
    pty = sandbox.pty.create(cols=100, rows=30)
    assert_type(pty, PtyHandle)
    for data in pty.output():
        assert_type(data, bytes)
    pty.send(b"\x03")
    pty.resize(120, 40)
    assert_type(pty.wait(), PtyHandle)
    assert_type(asandbox.pty.events(pty.id), AsyncStream[PtyEvent])
    pty.send(42)  # type: ignore[arg-type]

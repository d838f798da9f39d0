"""CrowNest Local's semantics beyond single calls: idempotency, restarts, TTL, output, faults, validation."""

from __future__ import annotations

import json
import logging
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import crownest_local._service
from crownest import CrowNestApiError
from crownest_local import LocalServer
from crownest_local._app import create_app
from crownest_local._beneath import remove_path
from crownest_local._service import Config
from crownest_local._spec import load_spec

MIB = 1 << 20


def raw(server: LocalServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=30)


def test_idempotency_replays_refuses_reuse_and_joins_a_request_in_flight(crownest_local: LocalServer) -> None:
    with raw(crownest_local) as http, crownest_local.client() as client:
        key = {"Idempotency-Key": f"test-{time.time_ns()}"}
        first = http.post(
            "/v1/sandboxes", json={"template": "base", "metadata": {"idem": key["Idempotency-Key"]}}, headers=key
        )
        again = http.post(
            "/v1/sandboxes", json={"template": "base", "metadata": {"idem": key["Idempotency-Key"]}}, headers=key
        )
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert len(list(client.sandboxes.list(metadata={"idem": key["Idempotency-Key"]}))) == 1
        other = http.post("/v1/sandboxes", json={"template": "python"}, headers=key)
        assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")
        bad = http.post("/v1/sandboxes", json={"template": "base"}, headers={"Idempotency-Key": "x" * 256})
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_idempotency_key")

        sandbox_id = first.json()["id"]
        run_key = {"Idempotency-Key": f"run-{time.time_ns()}"}
        body = {"command": "sleep 0.5; echo done"}
        answers: list[httpx.Response] = []
        runner = threading.Thread(
            target=lambda: answers.append(
                http.post(f"/v1/sandboxes/{sandbox_id}/commands/run", json=body, headers=run_key)
            )
        )
        runner.start()
        time.sleep(0.2)
        with raw(crownest_local) as second:
            busy = second.post(f"/v1/sandboxes/{sandbox_id}/commands/run", json=body, headers=run_key)
        runner.join()
        assert busy.json() == answers[0].json() and busy.headers["Idempotent-Replayed"] == "true"  # it waited
        replay = http.post(f"/v1/sandboxes/{sandbox_id}/commands/run", json=body, headers=run_key)
        assert replay.json() == answers[0].json() and answers[0].json()["stdout"] == "done\n"
        assert len(list(client.commands.list(sandbox_id))) == 1  # the command ran once
        client.sandboxes.kill(sandbox_id)


def test_an_idle_connection_outlives_a_clients_keepalive(crownest_local: LocalServer) -> None:
    """The server keeps an idle connection open longer than httpx keeps one (5 s), so a client that
    reuses it never races the server closing it (which fails the call with ReadError)."""
    request = f"GET /v1/templates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {crownest_local.api_key}\r\n\r\n"
    url = httpx.URL(crownest_local.base_url)
    with socket.create_connection((url.host, url.port), timeout=10) as connection:
        for pause in (0, httpx.Limits().keepalive_expiry + 0.5):  # type: ignore[operator]
            time.sleep(pause)
            connection.sendall(request.encode())
            head = connection.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += connection.recv(65536)


def test_a_restart_keeps_artifacts_and_keys_and_ends_sandboxes(tmp_path: Path) -> None:
    key = "cn_test_restart"
    with LocalServer(data_dir=tmp_path, api_key=key) as server, server.client() as client:
        sandbox = client.sandboxes.create(template="base")
        sandbox.files.write("keep.txt", "kept")
        artifact = sandbox.artifacts.create(path="keep.txt")
        command = sandbox.commands.start("sleep 60")
        with raw(server) as http:
            created = http.post(
                "/v1/sandboxes", json={"template": "base"}, headers={"Idempotency-Key": "across-restart"}
            )
    with LocalServer(data_dir=tmp_path, api_key=key) as server, server.client() as client:
        assert client.artifacts.download(artifact.id) == b"kept"
        assert client.sandboxes.get(sandbox.id).status == "killed"
        assert client.sandboxes.get(created.json()["id"]).status == "killed"
        with raw(server) as http:
            replay = http.post(
                "/v1/sandboxes", json={"template": "base"}, headers={"Idempotency-Key": "across-restart"}
            )
        assert replay.headers["Idempotent-Replayed"] == "true" and replay.json()["id"] == created.json()["id"]
        assert client.commands.get(sandbox.id, command.id).status == "killed"  # readable for the retention


def test_ttl_expiry_kills_the_process_tree(crownest_local: LocalServer, tmp_path: Path) -> None:
    with crownest_local.client() as client:
        sandbox = client.sandboxes.create(template="base", ttl_ms=1000)
        sleep = f"sleep 300.{secrets.randbelow(10**9)}"  # a name no other test on this machine runs
        started = sandbox.commands.start(f"{sleep} & {sleep} & wait")
        deadline = time.monotonic() + 10
        while client.sandboxes.get(sandbox.id).status == "running":
            assert time.monotonic() < deadline, "the sandbox outlived its TTL"
            time.sleep(0.1)
        ended = client.sandboxes.get(sandbox.id)
        assert ended.status == "expired" and ended.ended_at is not None and ended.ended_at >= ended.expires_at
        assert sandbox.commands.wait(started.id).status == "killed"  # readable for the retention
        with pytest.raises(CrowNestApiError) as caught:
            sandbox.commands.run("true")
        assert caught.value.code == "sandbox_not_running"
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", f"^{sleep}$"], capture_output=True).stdout:
        assert time.monotonic() < deadline, "processes of an expired sandbox are still running"
        time.sleep(0.1)


def test_output_is_capped_separated_and_replaced(crownest_local: LocalServer) -> None:
    with crownest_local.client() as client:
        sandbox = client.sandboxes.create(template="python")
        big = sandbox.commands.run("python -c \"import sys; sys.stdout.write('x' * (2 << 20)); sys.stderr.write('e')\"")
        assert big.stdout_truncated and len(big.stdout) == MIB and big.stdout == "x" * MIB
        assert not big.stderr_truncated and big.stderr == "e"
        odd = sandbox.commands.run("printf 'a\\377b\\342\\202'")
        assert odd.stdout == "a\ufffdb\ufffd"
        sandbox.kill()


def read_events(
    http: httpx.Client, url: str, last_id: str | None, stop_after: int | None
) -> tuple[list[tuple[str, str, str]], str | None]:
    """(event, id, data) until the stream ends or `stop_after` output events; and the last id seen."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    events: list[tuple[str, str, str]] = []
    with http.stream("GET", url, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                if not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
                continue
            if fields:
                events.append((fields["event"], fields["id"], fields["data"]))
                last_id = fields["id"]
                fields = {}
                if stop_after is not None and len(events) >= stop_after:
                    break
    return events, last_id


def test_events_resume_with_last_event_id_without_loss_or_repeat(crownest_local: LocalServer) -> None:
    script = "for i in $(seq 1 3000); do echo out$i; echo err$i >&2; done"
    with crownest_local.client() as client, raw(crownest_local) as http:
        sandbox = client.sandboxes.create(template="base")
        command = sandbox.commands.start(script)
        url = f"/v1/sandboxes/{sandbox.id}/commands/{command.id}/events"
        events, last = read_events(http, url, None, stop_after=3)
        while not events or events[-1][0] != "exit":
            more, last = read_events(http, url, last, stop_after=5)
            events += more
        output = [json.loads(data) for kind, _, data in events if kind == "output"]
        stdout = "".join(o["data"] for o in output if o["stream"] == "stdout")
        stderr = "".join(o["data"] for o in output if o["stream"] == "stderr")
        assert stdout == "".join(f"out{i}\n" for i in range(1, 3001))
        assert stderr == "".join(f"err{i}\n" for i in range(1, 3001))
        offsets = [int(i) for kind, i, _ in events if kind == "output"]
        assert offsets == sorted(set(offsets)) and offsets[-1] == len(stdout) + len(stderr)
        assert json.loads(events[-1][2])["status"] == "succeeded"
        sandbox.kill()


def test_injected_faults_are_absorbed_by_retries_without_duplicates() -> None:
    """Faults before and after the operation: every create lands exactly once (the soak does more)."""
    with LocalServer(faults=0.4) as server, server.client(max_retries=8) as client:
        ids = [client.sandboxes.create(template="base", metadata={"batch": "faults"}).id for _ in range(12)]
        listed = [s.id for s in client.sandboxes.list(metadata={"batch": "faults"}, limit=100)]
    assert sorted(listed) == sorted(ids) and len(set(ids)) == 12


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", "/v1/sandboxes", {"json": {}}, 400, "invalid_request"),
        ("POST", "/v1/sandboxes", {"json": {"template": "base", "ttlMs": 10}}, 400, "invalid_request"),
        ("POST", "/v1/sandboxes", {"json": {"template": 7}}, 400, "invalid_request"),
        ("POST", "/v1/sandboxes", {"json": {"template": "base", "metadata": {"k": 1}}}, 400, "invalid_request"),
        (
            "POST",
            "/v1/sandboxes",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/sandboxes",
            {"content": b"template=base", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/sandboxes",
            {"json": {"template": "base", "metadata": {"k": "v" * (2 * MIB)}}},
            413,
            "payload_too_large",
        ),
        ("POST", "/v1/sandboxes", {"json": {"template": "cobol"}}, 400, "template_not_found"),
        ("GET", "/v1/sandboxes?limit=0", {}, 400, "invalid_request"),
        ("GET", "/v1/sandboxes?limit=ten", {}, 400, "invalid_request"),
        ("GET", "/v1/sandboxes?status=sleeping", {}, 400, "invalid_request"),
        ("GET", "/v1/sandboxes?cursor=zzz", {}, 400, "invalid_request"),
        ("GET", "/v1/sandboxes/sbx_nope", {}, 404, "sandbox_not_found"),
        ("GET", "/v1/artifacts/art_nope", {}, 404, "artifact_not_found"),
        ("GET", "/v1/nowhere", {}, 404, "not_found"),
        ("PATCH", "/v1/sandboxes", {}, 405, "method_not_allowed"),
    ],
)
def test_bad_requests_get_the_contract_errors(
    crownest_local: LocalServer, method: str, path: str, kwargs: dict[str, object], status: int, code: str
) -> None:
    with raw(crownest_local) as http:
        response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert response.json()["error"]["requestId"] == response.headers["X-Request-Id"]


def test_quota_of_running_sandboxes() -> None:
    with LocalServer(max_sandboxes=2) as server, server.client() as client:
        client.sandboxes.create(template="base")
        second = client.sandboxes.create(template="base")
        with pytest.raises(CrowNestApiError) as caught:
            client.sandboxes.create(template="base")
        assert (caught.value.status, caught.value.code) == (403, "quota_exceeded")
        second.kill()
        client.sandboxes.create(template="base")


def test_ranges_and_etags(crownest_local: LocalServer) -> None:
    with crownest_local.client() as client, raw(crownest_local) as http:
        sandbox = client.sandboxes.create(template="base")
        sandbox.files.write("digits", b"0123456789")
        part = http.get(
            f"/v1/sandboxes/{sandbox.id}/files/content", params={"path": "digits"}, headers={"Range": "bytes=3-5"}
        )
        assert (part.status_code, part.content, part.headers["Content-Range"]) == (206, b"345", "bytes 3-5/10")
        artifact = sandbox.artifacts.create(path="digits")
        whole = http.get(f"/v1/artifacts/{artifact.id}/content")
        assert whole.headers["ETag"] == f'"{artifact.sha256}"' and whole.headers["Content-Length"] == "10"
        tail = http.get(f"/v1/artifacts/{artifact.id}/content", headers={"Range": "bytes=-2"})
        assert (tail.status_code, tail.content) == (206, b"89")
        sandbox.kill()


def test_cli_serve_prints_what_to_export(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "crownest_local",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--api-key",
        "cn_test_cli",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(3)]
            match = re.fullmatch(r"export CROWNEST_BASE_URL=(http://127\.0\.0\.1:\d+)\n", lines[1])
            assert match and lines[2] == "export CROWNEST_API_KEY=cn_test_cli\n"
            answer = httpx.get(f"{match[1]}/v1/templates", headers={"Authorization": "Bearer cn_test_cli"})
            assert answer.status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0


def test_without_bubblewrap_the_server_warns_at_start_and_on_templates(caplog: pytest.LogCaptureFixture) -> None:
    with (
        pytest.warns(UserWarning, match="NO isolation"),
        LocalServer(isolation=False) as server,
        server.client() as client,
    ):
        caplog.clear()
        client.templates.list()
        sandbox = client.sandboxes.create(template="base")
        assert sandbox.commands.run("echo $HOME").stdout.strip().endswith("/home")  # a plain process in the folder
    assert any("NO isolation" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_every_operation_of_the_spec_has_a_handler(tmp_path: Path) -> None:
    """The one test that fails while CrowNest Local lacks a handler; the server still starts and answers 501."""
    app = create_app(Config(data_dir=tmp_path, api_key="cn_test_local"))
    assert app.state.not_implemented == (), f"operations without a handler in _app.py: {app.state.not_implemented}"


def test_an_operation_without_a_handler_answers_501(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec()
    spec["paths"]["/v1/sandboxes/{sandboxId}/probe"] = {
        "get": {**spec["paths"]["/v1/sandboxes/{sandboxId}"]["get"], "operationId": "probeSandbox"}
    }
    monkeypatch.setattr("crownest_local._app.load_spec", lambda: spec)
    with LocalServer() as server, raw(server) as http, server.client(max_retries=0) as client:
        answer = http.get("/v1/sandboxes/sbx_1/probe")
        assert answer.status_code == 501
        assert answer.json()["error"]["code"] == "not_implemented"
        assert answer.json()["error"]["details"] == {"operationId": "probeSandbox"}
        assert answer.headers["X-Request-Id"] == answer.json()["error"]["requestId"]
        assert client.templates.list()  # every other operation is served


def _gated_removals(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make the removal of killed sandboxes' files wait for the returned event."""
    gate = threading.Event()

    def remove_when_let(path: Path) -> None:
        gate.wait(60)
        remove_path(path)

    monkeypatch.setattr(crownest_local._service, "remove_path", remove_when_let)
    return gate


def test_stopping_waits_for_the_removal_of_killed_sandboxes_files(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A removal still running at shutdown is waited for, then the whole folder goes (no race)."""
    gate = _gated_removals(monkeypatch)
    with LocalServer() as server, server.client() as client:
        sandbox = client.sandboxes.create(template="base")
        sandbox.files.write("many/1", "x")
        sandboxes_dir = server.sandbox_folder(sandbox.id).parent
        sandbox.kill()
        threading.Timer(1.0, gate.set).start()  # the server is stopping by then, its removal held
    assert not sandboxes_dir.exists()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "crownest_local" in r.name]


def test_a_removal_outlasting_the_shutdown_wait_leaves_the_folder_in_place(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gate = _gated_removals(monkeypatch)
    monkeypatch.setattr(crownest_local._service, "SHUTDOWN_WAIT_S", 0.2)

    class LetGoOnceLeft(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "in place" in record.getMessage():
                gate.set()

    handler = LetGoOnceLeft()
    logging.getLogger("crownest_local").addHandler(handler)
    try:
        with LocalServer() as server, server.client() as client:
            sandbox = client.sandboxes.create(template="base")
            sandboxes_dir = server.sandbox_folder(sandbox.id).parent
            sandbox.kill()
    finally:
        logging.getLogger("crownest_local").removeHandler(handler)
        gate.set()
    assert f"leaving {sandboxes_dir} in place" in caplog.text
    # Not removed beside the removal still working in it; that one ends its own work.
    assert sandboxes_dir.is_dir() and not any(sandboxes_dir.iterdir())
    remove_path(sandboxes_dir)

"""What a newer server may send: new fields, new enum values, fields left out."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import respx

import crownest
import payloads as p
from crownest import CrowNest
from crownest.models import Command, CommandStatus, Preview, Sandbox, SandboxStatus


def test_unknown_enum_value_is_kept_round_tripped_and_recognisable() -> None:
    sandbox = Sandbox.from_dict(p.sandbox(status="hibernating"))
    assert sandbox.status == "hibernating"
    assert sandbox["status"] == "hibernating"
    assert not sandbox.status.is_known
    assert isinstance(sandbox.status, SandboxStatus)
    assert sandbox.to_dict()["status"] == "hibernating"
    assert SandboxStatus.RUNNING.is_known
    assert SandboxStatus("running") is SandboxStatus.RUNNING


def test_unknown_fields_are_kept_and_round_tripped() -> None:
    command = Command.from_dict(p.command(cpuMs=42, limits={"mem": 1}))
    assert command.additional_properties["cpuMs"] == 42
    assert command["cpuMs"] == 42  # type: ignore[call-overload]  # not a key the spec names: mypy says so
    assert command.additional_properties == {"cpuMs": 42, "limits": {"mem": 1}}
    assert command.to_dict()["limits"] == {"mem": 1}
    assert Command.from_dict(command.to_dict()) == command


def test_missing_optional_field_is_unset_and_absent_from_the_mapping() -> None:
    body = p.preview(visibility="public")
    del body["token"]
    preview = Preview.from_dict(body)
    assert "token" not in preview
    assert "token" not in preview.to_dict()
    with pytest.raises(KeyError):
        preview["token"]


def test_mapping_access_by_wire_name_matches_attributes() -> None:
    command = Command.from_dict(p.command())
    assert command["exitCode"] == command.exit_code == 0
    assert command["startedAt"] == command.started_at == datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert "stdout" in command and "exit_code" not in command
    assert command.to_dict()["stdoutTruncated"] is False
    assert set(command) == set(p.command())
    assert command.get("nope") is None  # type: ignore[call-overload]  # not a key the spec names
    assert len(command) == len(p.command())


def test_metadata_reads_like_a_dict() -> None:
    sandbox = Sandbox.from_dict(p.sandbox(metadata={"job": "primes-demo", "team": "a"}))
    assert dict(sandbox.metadata) == {"job": "primes-demo", "team": "a"}
    assert sandbox.metadata["job"] == "primes-demo"
    assert sandbox["metadata"]["team"] == "a"


def test_a_newer_server_through_the_client(api: respx.MockRouter, client: CrowNest) -> None:
    body = p.command(status="paused", exitCode=None, gpuMs=7)
    api.get("/v1/sandboxes/sbx_1/commands/cmd_1").mock(return_value=httpx.Response(200, json=body))
    result = client.commands.get("sbx_1", "cmd_1")
    assert result.status == "paused" and not result.status.is_known
    assert result.additional_properties["gpuMs"] == 7
    assert CommandStatus.SUCCEEDED.is_known


def test_a_missing_required_field_is_a_response_validation_error(api: respx.MockRouter, client: CrowNest) -> None:
    body = p.sandbox()
    del body["expiresAt"]
    api.get("/v1/sandboxes/sbx_1").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(crownest.ResponseValidationError, match="expiresAt"):
        client.sandboxes.get("sbx_1")

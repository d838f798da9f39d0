"""Checked by `make typecheck` with mypy and pyright, never run: `crownest.models` names are real types.

A name that type checkers saw as `Any` would pass `assert_type` against anything but itself, and
an unknown name would not be an error; both fail here.
"""

from typing import assert_type

from crownest.models import Command, Sandbox, SandboxStatus


def sandbox_fields(sandbox: Sandbox) -> None:
    assert_type(sandbox.id, str)
    assert_type(sandbox.status, SandboxStatus)
    assert_type(Sandbox.from_dict({}), Sandbox)


def command_fields(command: Command) -> None:
    assert_type(command.command, str)


def unknown_names_are_errors() -> None:
    from crownest.models import NoSuchModel  # type: ignore[attr-defined]

    del NoSuchModel

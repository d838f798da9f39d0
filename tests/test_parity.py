"""Sync and async have the same surface: every public class and method has a twin.

The twin has the same name with `Async` in front, and each method the same
parameters (names, kinds, defaults, annotations up to Sync/Async names).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re

import pytest

import crownest
from crownest._generated import resources
from crownest._handle import AsyncCommandHandle, AsyncSandboxHandle, CommandHandle, SandboxHandle

# One module per tag of the spec, as generated.
MODULES = [importlib.import_module(f"{resources.__name__}.{m.name}") for m in pkgutil.iter_modules(resources.__path__)]
PAIRS = [
    (crownest.CrowNest, crownest.AsyncCrowNest),
    (SandboxHandle, AsyncSandboxHandle),
    (CommandHandle, AsyncCommandHandle),
    (resources.ClientResources, resources.AsyncClientResources),
    (resources.SandboxScopes, resources.AsyncSandboxScopes),
    *[
        (getattr(m, name), getattr(m, "Async" + name))
        for m in MODULES
        for name in m.__all__
        if not name.startswith("Async")
    ],
]
# Methods that do no I/O, the same plain methods on both.
NO_IO = {"check_returncode", "with_options"}
# Iteration differs by nature (`__iter__` / `__aiter__`); everything else must match.
ITERATION = {"__iter__", "__aiter__", "__enter__", "__aenter__", "__exit__", "__aexit__"}


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if (not name.startswith("_") or name == "__init__") and name not in ITERATION
    }


def _normalise(text: str) -> str:
    return re.sub(r"\b(Async|Sync)(?=[A-Z])", "", text)


def _signature(member: object) -> str:
    """The signature of a method or property getter; a data field compares by name alone."""
    if isinstance(member, property):
        member = member.fget
    elif isinstance(member, functools.cached_property):
        member = member.func
    if not callable(member):
        return "field"
    return _normalise(str(inspect.signature(member)))


def test_every_public_sync_class_has_an_async_twin() -> None:
    for module in MODULES:
        sync_names = {n for n in module.__all__ if not n.startswith("Async")}
        assert {n for n in module.__all__ if n.startswith("Async")} == {"Async" + n for n in sync_names}
    public = [n for n in crownest.__all__ if isinstance(getattr(crownest, n), type)]
    for name in public:
        if name.startswith("Async"):
            assert name[5:] in public or "Sync" + name[5:] in public, name


@pytest.mark.parametrize("sync_cls, async_cls", PAIRS, ids=lambda c: c.__name__)
def test_same_methods_and_signatures(sync_cls: type, async_cls: type) -> None:
    sync_members, async_members = _public(sync_cls), _public(async_cls)
    assert sorted(sync_members) == sorted(async_members)
    for name, member in sync_members.items():
        twin = async_members[name]
        assert _signature(member) == _signature(twin), f"{sync_cls.__name__}.{name}"
        # A method the class defines does I/O, so its twin is a coroutine (a pager or a stream is
        # returned as is); inherited model methods (to_dict, keys, ...) are the same plain methods on both.
        defined_here = getattr(member, "__qualname__", "").startswith(sync_cls.__name__ + ".")
        lazy = "Pager" in _signature(member) or "Stream" in _signature(member)
        if inspect.isfunction(member) and defined_here and name not in {"__init__", *NO_IO} and not lazy:
            assert inspect.iscoroutinefunction(twin), f"{async_cls.__name__}.{name} must be async"
        elif inspect.isfunction(member) and defined_here and name != "__init__":
            assert not inspect.iscoroutinefunction(twin), f"{async_cls.__name__}.{name} must not be async"


def test_pagers_match() -> None:
    sync_names = {n for n in dir(crownest.SyncPager) if not n.startswith("_")}
    async_names = {n for n in dir(crownest.AsyncPager) if not n.startswith("_")}
    assert sync_names == async_names == {"first_page", "pages"}


def test_streams_match() -> None:
    assert {n for n in dir(crownest.Stream) if not n.startswith("_")} == {"close"}
    assert {n for n in dir(crownest.AsyncStream) if not n.startswith("_")} == {"aclose"}  # as httpx names them

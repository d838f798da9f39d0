"""What every generated model is beside its fields: a read-only mapping by wire name, frozen,
convertible to a dict or JSON, and the type checks of its scalar fields.

`result["exitCode"]` returns the same value as `result.exit_code`; keys the
model does not know (fields from a newer server) come from
`additional_properties`. Every generated model inherits `WireMapping`, keyed by
the `Literal` union of its wire names, and declares `_wire_names` (wire name ->
attribute) and, for type checkers, one `__getitem__` overload per wire name, so
that `result["exitCode"]` is `int | None` and `result["exit_code"]` an error.
A wrong key raises `WireKeyError`, a `KeyError` naming the right key.

Models are frozen: assigning a field raises `ReadOnlyError`. Each carries
`_request_id`, the `X-Request-Id` of the answer it came from (None for one you
built).

`from_dict` passes every scalar field through `check_scalar`, so that a body
whose `exitCode` is `"zero"` raises (and becomes ResponseValidationError)
instead of arriving in a field typed `int`.
"""

from __future__ import annotations

import difflib
import json
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Protocol, TypeVar

import attrs

from ._exceptions import ReadOnlyError, WireKeyError, loads, parsed
from ._generated.types import Unset

K = TypeVar("K", bound=str)


def _refuse_assignment(self: object, name: str, value: object) -> NoReturn:
    raise ReadOnlyError(
        f"{type(self).__name__} is read-only: results are frozen, so {name} cannot be assigned. "
        f"attrs.evolve(result, {name}=...) makes a changed copy."
    )


def _refuse_deletion(self: object, name: str) -> NoReturn:
    raise ReadOnlyError(f"{type(self).__name__} is read-only: results are frozen, so {name} cannot be deleted.")


def set_field(model: object, name: str, value: object) -> None:
    """Set a field of a frozen model: only the SDK itself does (parsing, and handles updating in place)."""
    object.__setattr__(model, name, value)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # by model class: read once, as handles are made per call


def copy_fields(target: Any, source: Any) -> None:
    """Put every field of `source` (a model) into `target` (a handle of that model), in place."""
    model = type(source)
    if model not in _FIELD_NAMES:
        _FIELD_NAMES[model] = tuple(f.name for f in attrs.fields(model) if f.name != "additional_properties")
    for name in _FIELD_NAMES[model]:
        set_field(target, name, getattr(source, name))
    set_field(target, "additional_properties", dict(source.additional_properties))
    set_field(target, "_request_id", source._request_id)


class Event(Protocol):
    """A Server-Sent Event as the generated event models give it."""

    @property
    def event(self) -> str: ...

    @property
    def data(self) -> str: ...

    @property
    def id(self) -> object: ...


T = TypeVar("T")


def event_data(event: Event, parse: Callable[[Any], T]) -> T:
    """The event's JSON data, parsed; a bad one raises ResponseValidationError."""
    return parsed(
        lambda data: parse(loads(data)),
        event.data,
        what=f"A {event.event!r} event",
        excerpt=lambda: event.data[:200],
        response=None,
    )


def stamp_request_id(result: object, request_id: str | None) -> None:
    """Give a parsed result (a model, or each model of a list) the request ID of its answer."""
    for model in result if isinstance(result, list) else (result,):
        if isinstance(model, WireMapping):
            object.__setattr__(model, "_request_id", request_id)


class WireMapping(Mapping[K, Any]):
    """Read-only `Mapping` view of a model: keys are wire (camelCase) names."""

    __slots__ = ("_request_id",)
    _wire_names: ClassVar[dict[str, str]] = {}
    additional_properties: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # attrs' frozen classes raise a bare FrozenInstanceError; ours says what to do instead.
        if "__setattr__" in cls.__dict__:
            type.__setattr__(cls, "__setattr__", _refuse_assignment)
            type.__setattr__(cls, "__delattr__", _refuse_deletion)

    if TYPE_CHECKING:
        _request_id: str | None
        """The `X-Request-Id` of the answer this result came from (None for a model you built)."""
    else:

        def __getattr__(self, name: str) -> Any:
            if name == "_request_id":  # the slot is unset: a model you built, not one an answer gave
                return None
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getitem__(self, key: K) -> Any:
        attribute = self._wire_names.get(key)
        if attribute is None:
            if key in self.additional_properties:
                return self.additional_properties[key]
            raise self._unknown(key)
        value = getattr(self, attribute)
        if isinstance(value, Unset):
            raise WireKeyError(f"{key!r}: this {type(self).__name__} has no {key} (the server did not send it)")
        return value

    def _unknown(self, key: object) -> WireKeyError:
        name = type(self).__name__
        by_attribute = {attribute: wire for wire, attribute in self._wire_names.items()}
        if isinstance(key, str) and key in by_attribute:
            return WireKeyError(f"{key!r}: keys are the API's names; did you mean {by_attribute[key]!r} or .{key}?")
        close = difflib.get_close_matches(str(key), [*self._wire_names, *self.additional_properties], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return WireKeyError(f"{key!r}: {name} has no such key{hint} Its keys: {', '.join(self._wire_names)}")

    def __iter__(self) -> Iterator[K]:
        for key, attribute in self._wire_names.items():
            if not isinstance(getattr(self, attribute), Unset):
                yield key  # type: ignore[misc]  # every key of _wire_names is one of K
        yield from self.additional_properties  # type: ignore[misc]  # unknown fields, by wire name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        attribute = self._wire_names.get(key)
        if attribute is None:
            return key in self.additional_properties
        return not isinstance(getattr(self, attribute), Unset)

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The model as the API's JSON object (wire names); `from_dict` reads it back."""

    def to_json(self, *, indent: int | None = None) -> str:
        """The model as the API's JSON text; `from_dict(json.loads(text))` reads it back."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


V = TypeVar("V")


class WireMap(dict[str, V]):
    """A map field (metadata, environment variables): a plain `dict` to compare and print, with
    `to_dict()`/`from_dict()` as every model has."""

    __slots__ = ()

    def to_dict(self) -> dict[str, V]:
        """A plain dict copy."""
        return dict(self)


_SCALARS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}
# The type `json.loads` gives each kind: the first check of every field (parsing is a good part of
# a call's cost), before the rules for subclasses, bools and ints given for floats.
_DECODED: dict[str, type] = {"str": str, "int": int, "bool": bool, "float": float}


def is_scalar(value: Any, kinds: tuple[str, ...]) -> bool:
    """Whether `value` is of one of the JSON scalar `kinds` (`str`, `int`, `bool`, `float`);
    a bool is not an int (nor a float), an int is a float."""
    if isinstance(value, bool):
        return "bool" in kinds
    return any(isinstance(value, _SCALARS[kind]) for kind in kinds)


def check_scalar(value: Any, kind: str, name: str) -> Any:
    """`value` if it is of `kind` (or left out: Unset), a float for an int given as a float;
    else TypeError naming the field `name`."""
    if type(value) is _DECODED[kind]:
        return value
    if isinstance(value, Unset):
        return value
    if not is_scalar(value, (kind,)):
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")
    return float(value) if kind == "float" else value

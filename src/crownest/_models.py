"""Mapping access for generated models, by wire name, and the type checks of their scalar fields.

`result["exitCode"]` returns the same value as `result.exit_code`; keys the
model does not know (fields from a newer server) come from
`additional_properties`. Every generated model inherits `WireMapping` and
declares `_wire_names` (wire name -> attribute).

`from_dict` passes every scalar field through `check_scalar`, so that a body
whose `exitCode` is `"zero"` raises (and becomes ResponseValidationError)
instead of arriving in a field typed `int`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from ._generated.types import Unset


class WireMapping(Mapping[str, Any]):
    """Read-only `Mapping` view of a model: keys are wire (camelCase) names."""

    __slots__ = ()
    _wire_names: ClassVar[dict[str, str]] = {}
    additional_properties: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        attribute = self._wire_names.get(key)
        if attribute is None:
            return self.additional_properties[key]
        value = getattr(self, attribute)
        if isinstance(value, Unset):
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        for key, attribute in self._wire_names.items():
            if not isinstance(getattr(self, attribute), Unset):
                yield key
        yield from self.additional_properties

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        attribute = self._wire_names.get(key)
        if attribute is None:
            return key in self.additional_properties
        return not isinstance(getattr(self, attribute), Unset)


_SCALARS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}


def is_scalar(value: Any, kinds: tuple[str, ...]) -> bool:
    """Whether `value` is of one of the JSON scalar `kinds` (`str`, `int`, `bool`, `float`);
    a bool is not an int (nor a float), an int is a float."""
    if isinstance(value, bool):
        return "bool" in kinds
    return any(isinstance(value, _SCALARS[kind]) for kind in kinds)


def check_scalar(value: Any, kind: str, name: str) -> Any:
    """`value` if it is of `kind` (or left out: Unset), a float for an int given as a float;
    else TypeError naming the field `name`."""
    if isinstance(value, Unset):
        return value
    if not is_scalar(value, (kind,)):
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")
    return float(value) if kind == "float" else value

"""Declared event types and their payload schemas.

A module's ``events.py`` declares each event it publishes as an ``EventType``
whose payload is a frozen dataclass. Producers and consumers both validate
against it, so a payload that does not match never reaches a handler.
"""

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

from eventbus.envelope import EVENT_TYPE_PATTERN, producer_of
from eventbus.errors import InvalidPayload


@dataclass(frozen=True)
class EventType:
    """One event type: its dotted name, payload dataclass and schema version."""

    name: str
    payload: type
    schema_version: int = 1

    def __post_init__(self):
        if not EVENT_TYPE_PATTERN.match(self.name):
            raise ValueError(f"event type name {self.name!r} must be dotted lower-case words")
        if not dataclasses.is_dataclass(self.payload):
            raise TypeError(f"payload of {self.name} must be a dataclass, got {self.payload!r}")

    @property
    def producer(self) -> str:
        return producer_of(self.name)

    def dump(self, payload: Any) -> dict[str, Any]:
        """Return ``payload`` (a dataclass instance or a dict) as a validated dict."""
        if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
            if not isinstance(payload, self.payload):
                raise InvalidPayload(
                    f"{self.name} expects a {self.payload.__name__} payload, "
                    f"got {type(payload).__name__}"
                )
            # A shallow copy: payload values are JSON values (lists and dicts
            # hold no dataclasses), so dataclasses.asdict's deep copy adds nothing.
            document = {name: getattr(payload, name) for name in self._fields}
        else:
            document = payload
        self._validate(document)
        return document

    def load(self, document: Any) -> Any:
        """Validate ``document`` and return it as an instance of the payload dataclass."""
        self._validate(document)
        return self.payload(**document)

    def _validate(self, document: Any) -> None:
        """Raise ``InvalidPayload`` naming the first field of ``document`` that does not match the payload."""
        if not isinstance(document, dict):
            raise InvalidPayload(f"{self.name} payload must be an object, got {type(document).__name__}")
        fields = self._fields
        if len(document) != len(fields) or not document.keys() <= fields.keys():
            unknown = sorted(set(document) - set(fields))
            if unknown:
                raise InvalidPayload(f"{self.name} payload has unknown field(s): {', '.join(unknown)}")
        for name, (hint, required) in fields.items():
            if name not in document:
                if required:
                    raise InvalidPayload(f"{self.name} payload is missing field {name!r}")
                continue
            value = document[name]
            if not _matches(value, hint):
                raise InvalidPayload(f"{self.name} payload field {name!r} must be {_describe(hint)}, got {value!r}")

    @functools.cached_property
    def _fields(self) -> dict[str, tuple[Any, bool]]:
        """Each payload field's type hint and whether a document must name it, read once per event type."""
        hints = typing.get_type_hints(self.payload)
        return {
            field.name: (
                hints[field.name],
                field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
            )
            for field in dataclasses.fields(self.payload)
        }


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is int:
        # JSON has no separate boolean-free integer type; reject True/False.
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_matches(item, item_hint) for item in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return False


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        return f"a list of {_describe(item_hint)}"
    return getattr(hint, "__name__", str(hint))

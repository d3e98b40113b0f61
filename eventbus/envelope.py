"""The event envelope: one JSON shape for every event, validated on both ends."""

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventbus.errors import InvalidEnvelope

# Dotted, lower case, at least three parts: <producer>.<entity>.<past tense verb>.
EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){2,}$")

REQUIRED_FIELDS = (
    "event_id",
    "event_type",
    "schema_version",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "tenant_id",
    "correlation_id",
    "causation_id",
    "occurred_at",
    "payload",
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """An event as it travels: identity, aggregate position, tracing ids and payload."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    tenant_id: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    occurred_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def producer(self) -> str:
        return producer_of(self.event_type)

    @property
    def subject(self) -> str:
        return subject_for(self.event_type)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "aggregate_version": self.aggregate_version,
            "tenant_id": self.tenant_id,
            "correlation_id": str(self.correlation_id),
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "occurred_at": format_timestamp(self.occurred_at),
            "payload": self.payload,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Envelope":
        """Parse and validate ``data``; raise ``InvalidEnvelope`` naming the first problem."""
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidEnvelope(f"message is not JSON: {error}") from None
        return cls.from_dict(document)

    @classmethod
    def from_dict(cls, document: Any) -> "Envelope":
        if not isinstance(document, dict):
            raise InvalidEnvelope(f"envelope must be a JSON object, not {type(document).__name__}")

        missing = [name for name in REQUIRED_FIELDS if name not in document]
        if missing:
            raise InvalidEnvelope(f"envelope is missing field(s): {', '.join(missing)}")
        unknown = sorted(set(document) - set(REQUIRED_FIELDS))
        if unknown:
            raise InvalidEnvelope(f"envelope has unknown field(s): {', '.join(unknown)}")

        event_type = document["event_type"]
        if not isinstance(event_type, str) or not EVENT_TYPE_PATTERN.match(event_type):
            raise InvalidEnvelope(
                f"event_type {event_type!r} is invalid; expected dotted lower-case words "
                "such as 'ar.invoice.paid'"
            )

        return cls(
            event_id=_parse_uuid(document, "event_id"),
            event_type=event_type,
            schema_version=_parse_positive_int(document, "schema_version"),
            aggregate_type=_parse_text(document, "aggregate_type"),
            aggregate_id=_parse_text(document, "aggregate_id"),
            aggregate_version=_parse_positive_int(document, "aggregate_version"),
            tenant_id=_parse_text(document, "tenant_id"),
            correlation_id=_parse_uuid(document, "correlation_id"),
            causation_id=(
                None if document["causation_id"] is None else _parse_uuid(document, "causation_id")
            ),
            occurred_at=_parse_timestamp(document, "occurred_at"),
            payload=_parse_payload(document),
        )


def producer_of(event_type: str) -> str:
    """Return the module that publishes ``event_type``: its first dotted part."""
    return event_type.split(".", 1)[0]


def subject_for(event_type: str) -> str:
    """Return the bus subject of ``event_type``: ``<producer>.events.<event_type>``."""
    return f"{producer_of(event_type)}.events.{event_type}"


def format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment!r} has no time zone; pass an aware UTC datetime")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_uuid(document: dict, name: str) -> uuid.UUID:
    value = document[name]
    if not isinstance(value, str):
        raise InvalidEnvelope(f"{name} must be a UUID string, got {value!r}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidEnvelope(f"{name} {value!r} is not a valid UUID") from None


def _parse_positive_int(document: dict, name: str) -> int:
    value = document[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidEnvelope(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def _parse_text(document: dict, name: str) -> str:
    value = document[name]
    if not isinstance(value, str) or not value.strip():
        raise InvalidEnvelope(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > 100:
        raise InvalidEnvelope(f"{name} is {len(value)} characters long; the maximum is 100")
    return value


def _parse_timestamp(document: dict, name: str) -> datetime:
    value = document[name]
    if not isinstance(value, str):
        raise InvalidEnvelope(f"{name} must be an RFC 3339 string, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEnvelope(f"{name} {value!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise InvalidEnvelope(f"{name} {value!r} has no UTC offset; append 'Z'")
    return moment.astimezone(UTC)


def _parse_payload(document: dict) -> dict[str, Any]:
    value = document["payload"]
    if not isinstance(value, dict):
        raise InvalidEnvelope(f"payload must be a JSON object, got {type(value).__name__}")
    return value

"""Input checks shared by the payments services; each raises the caller's error class."""

import uuid
from datetime import datetime


def require_aware(name: str, moment: datetime) -> None:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}={moment!r} must be an aware datetime; pass one in UTC")


def require_uuid(error_class: type[Exception], name: str, value: object) -> str:
    """Return ``value`` as a canonical UUID string, or raise ``error_class`` naming ``name``."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise error_class(f"{name} {value!r} is not a UUID; pass the id as a UUID string") from None


def require_text(error_class: type[Exception], name: str, value: object, *, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise error_class(f"{name} {value!r} is missing; pass a non-empty string")
    if len(value) > max_length:
        raise error_class(f"{name} is {len(value)} characters long; the maximum is {max_length}")
    return value

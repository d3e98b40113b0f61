"""Typed readers for environment variables that name the variable on error."""

import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false")


def env_int(name: str, *, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a whole number; set it to one, such as {default}, or unset it for "
            f"the default ({default})"
        ) from None


def env_float(name: str, *, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a number; set it to one, such as {default}, or unset it for "
            f"the default ({default})"
        ) from None


def env_list(name: str, *, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


# The rate format DRF's SimpleRateThrottle.parse_rate reads: a whole number of
# requests, a slash and a period. DRF reads only the period's first letter, so
# "minute", "min" and "m" are the same.
_THROTTLE_RATE = re.compile(r"[0-9]+/(s|sec|second|m|min|minute|h|hour|d|day)")


def env_throttle_rate(name: str, *, default: str) -> str:
    """Return the variable as a DRF throttle rate such as 600/minute; raise ImproperlyConfigured if it is not one."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    rate = raw.strip()
    if not _THROTTLE_RATE.fullmatch(rate):
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a request rate; use a whole number of requests per second, minute, "
            f"hour or day, such as {default}"
        )
    return rate

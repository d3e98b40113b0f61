"""Typed access to the ``PAYMENTS_*`` settings, validated on every read so tests can override them."""

import math
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_RETRY_SCHEDULE_DAYS = (1, 3, 5)
DEFAULT_SIMULATED_SLOW_SECONDS = 5.0
# An attempt in processing this long is taken to be abandoned by a crashed
# process. It must exceed the gateway's longest response time, or the retry
# runner sends a second request while the first is still in flight. The
# idempotency key makes that harmless for money, but it is wasted work.
DEFAULT_PROCESSING_STALE_SECONDS = 600


@dataclass(frozen=True)
class PaymentsSettings:
    gateway: str
    # Days after the first failed attempt on which the payment is retried.
    retry_schedule_days: tuple[int, ...]
    simulated_slow_seconds: float
    processing_stale_seconds: int


def payments_settings() -> PaymentsSettings:
    """Read and validate the payments settings; raise ``ImproperlyConfigured`` naming the bad one."""
    gateway = getattr(settings, "PAYMENTS_GATEWAY", "simulated")
    if not isinstance(gateway, str) or not gateway.strip():
        raise ImproperlyConfigured(
            f"PAYMENTS_GATEWAY={gateway!r} is invalid; use 'simulated' or the dotted path "
            "of a payments.gateways.base.PaymentGateway subclass"
        )

    return PaymentsSettings(
        gateway=gateway.strip(),
        retry_schedule_days=_retry_schedule(
            getattr(settings, "PAYMENTS_RETRY_SCHEDULE_DAYS", DEFAULT_RETRY_SCHEDULE_DAYS)
        ),
        simulated_slow_seconds=_non_negative_number(
            "PAYMENTS_SIMULATED_SLOW_SECONDS",
            getattr(settings, "PAYMENTS_SIMULATED_SLOW_SECONDS", DEFAULT_SIMULATED_SLOW_SECONDS),
        ),
        processing_stale_seconds=_positive_whole_number(
            "PAYMENTS_PROCESSING_STALE_SECONDS",
            getattr(settings, "PAYMENTS_PROCESSING_STALE_SECONDS", DEFAULT_PROCESSING_STALE_SECONDS),
        ),
    )


def _retry_schedule(raw) -> tuple[int, ...]:
    # The environment supplies strings ("1,3,5"), Python settings supply ints.
    days = []
    for item in raw:
        try:
            day = int(str(item).strip())
        except ValueError:
            day = None
        if day is None or day < 1:
            raise ImproperlyConfigured(
                f"PAYMENTS_RETRY_SCHEDULE_DAYS contains {item!r}; each entry must be a whole "
                "number of days of at least 1, for example 1,3,5"
            )
        days.append(day)

    for earlier, later in zip(days, days[1:], strict=False):
        if later <= earlier:
            raise ImproperlyConfigured(
                f"PAYMENTS_RETRY_SCHEDULE_DAYS {days} must increase strictly, because each entry "
                "counts days from the first failure; for example 1,3,5"
            )
    return tuple(days)


def _non_negative_number(name: str, raw) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if isinstance(raw, bool) or not math.isfinite(value) or value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a number of seconds of at least 0")
    return value


def _positive_whole_number(name: str, raw) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a whole number of seconds of at least 1")
    return raw

"""Replay or discard dead letters after the cause is fixed."""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from eventbus.consumer import Disposition, deliver
from eventbus.errors import EventBusError
from eventbus.models import DeadLetterStatus
from eventbus.registry import get_module

logger = logging.getLogger(__name__)


class DeadLetterNotFound(EventBusError):
    code = "dead_letter_not_found"


@dataclass(frozen=True)
class ReplayResult:
    dead_letter_id: int
    applied: bool
    # The reason it was dead-lettered again, when replay failed.
    error: str = ""


def dead_letter_replay(*, module: str, dead_letter_id: int) -> ReplayResult:
    """Apply a dead letter's message again through the module's handler.

    The message goes through the same inbox as a delivery, so an event that
    was applied in the meantime is not applied twice. When the handler fails
    again the row stays dead with the new error.
    """
    bus_module = get_module(module)
    dead_letter = _get_dead(bus_module, dead_letter_id)

    # One delivery that counts as the last: a failure dead-letters again
    # instead of waiting for redeliveries that a replay does not have.
    result = deliver(
        module=bus_module,
        subject=dead_letter.subject,
        body=bytes(dead_letter.body),
        delivery=1,
        max_deliver=1,
    )
    if result.disposition is not Disposition.ACK:
        dead_letter.refresh_from_db()
        logger.warning(
            "Replay of dead letter %s in %s failed again", dead_letter_id, module,
            extra={"bus_module": module, "event_id": str(dead_letter.event_id)},
        )
        return ReplayResult(dead_letter_id, applied=False, error=dead_letter.error)

    with transaction.atomic(using=bus_module.alias):
        bus_module.dead_letters.objects.using(bus_module.alias).filter(id=dead_letter_id).update(
            status=DeadLetterStatus.REPLAYED, resolved_at=timezone.now()
        )
    logger.info(
        "Replayed dead letter %s in %s", dead_letter_id, module,
        extra={"bus_module": module, "event_id": str(dead_letter.event_id)},
    )
    return ReplayResult(dead_letter_id, applied=True)


def dead_letter_discard(*, module: str, dead_letter_id: int) -> None:
    """Mark a dead letter discarded: its message will not be applied."""
    bus_module = get_module(module)
    _get_dead(bus_module, dead_letter_id)
    with transaction.atomic(using=bus_module.alias):
        bus_module.dead_letters.objects.using(bus_module.alias).filter(id=dead_letter_id).update(
            status=DeadLetterStatus.DISCARDED, resolved_at=timezone.now()
        )
    logger.info("Discarded dead letter %s in %s", dead_letter_id, module, extra={"bus_module": module})


def _get_dead(bus_module, dead_letter_id: int):
    try:
        dead_letter = bus_module.dead_letters.objects.using(bus_module.alias).get(id=dead_letter_id)
    except bus_module.dead_letters.DoesNotExist:
        raise DeadLetterNotFound(
            f"dead letter {dead_letter_id} does not exist in module {bus_module.name!r}; "
            f"list them with manage.py dead_letters list --module {bus_module.name}"
        ) from None
    if dead_letter.status != DeadLetterStatus.DEAD:
        raise DeadLetterNotFound(
            f"dead letter {dead_letter_id} in module {bus_module.name!r} is already {dead_letter.status}"
        )
    return dead_letter

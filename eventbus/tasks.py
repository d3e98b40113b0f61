"""Celery tasks: relay each module's outbox and purge published rows.

The relay lock makes overlapping ticks harmless: a second relay for the same
module returns at once.
"""

from celery import shared_task

from eventbus.registry import all_modules
from eventbus.relay import outbox_purge, relay_outbox


@shared_task(name="eventbus.relay_outbox", ignore_result=True)
def relay_outbox_task(module: str) -> int:
    return relay_outbox(module=module).published


@shared_task(name="eventbus.relay_all_outboxes", ignore_result=True)
def relay_all_outboxes_task() -> int:
    return sum(relay_outbox(module=module.name).published for module in all_modules())


@shared_task(name="eventbus.purge_outboxes", ignore_result=True)
def purge_outboxes_task() -> int:
    return sum(outbox_purge(module=module.name) for module in all_modules())

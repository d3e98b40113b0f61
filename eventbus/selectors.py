"""Read-only views of each module's outbox, inbox and dead letters."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min
from django.utils import timezone

from eventbus.models import DeadLetterStatus, OutboxState
from eventbus.registry import all_modules, get_module


@dataclass(frozen=True)
class OutboxBacklog:
    module: str
    pending: int
    failing: int
    oldest_pending_at: datetime | None
    dead_letters: int

    def oldest_age_seconds(self, now: datetime | None = None) -> float | None:
        if self.oldest_pending_at is None:
            return None
        return ((now or timezone.now()) - self.oldest_pending_at).total_seconds()


def outbox_backlog(*, module: str) -> OutboxBacklog:
    bus_module = get_module(module)
    pending = bus_module.outbox.objects.using(bus_module.alias).filter(state=OutboxState.PENDING)
    summary = pending.aggregate(count=Count("id"), oldest=Min("created_at"))
    failing = pending.exclude(last_error="").count()
    dead = bus_module.dead_letters.objects.using(bus_module.alias).filter(status=DeadLetterStatus.DEAD).count()
    return OutboxBacklog(module, summary["count"], failing, summary["oldest"], dead)


def outbox_backlogs() -> list[OutboxBacklog]:
    return [outbox_backlog(module=module.name) for module in all_modules()]


def dead_letter_list(*, module: str | None = None, status: str = DeadLetterStatus.DEAD) -> list:
    modules = [get_module(module)] if module else all_modules()
    rows = []
    for bus_module in modules:
        queryset = bus_module.dead_letters.objects.using(bus_module.alias).order_by("id")
        if status:
            queryset = queryset.filter(status=status)
        rows.extend((bus_module.name, dead_letter) for dead_letter in queryset)
    return rows


def outbox_event_queryset(*, module: str, tenant_id: str | None = None):
    """Return the module's outbox rows as a queryset, of one tenant or all; raise ``UnknownModule``."""
    bus_module = get_module(module)
    rows = bus_module.outbox.objects.using(bus_module.alias).all()
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    return rows


def dead_letter_queryset(*, module: str, tenant_id: str | None = None):
    """Return the module's dead letters of every status as a queryset, of one tenant or all.

    Raises ``UnknownModule``.
    """
    bus_module = get_module(module)
    rows = bus_module.dead_letters.objects.using(bus_module.alias).all()
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    return rows


def processed_event_queryset(*, module: str, tenant_id: str | None = None):
    """Return the module's inbox rows as a queryset, of one tenant or all; raise ``UnknownModule``."""
    bus_module = get_module(module)
    rows = bus_module.inbox.objects.using(bus_module.alias).all()
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    return rows

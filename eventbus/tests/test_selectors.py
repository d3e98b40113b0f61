import uuid

import pytest
from django.utils import timezone

from eventbus.errors import UnknownModule
from eventbus.models import DeadLetterReason
from eventbus.registry import get_module
from eventbus.selectors import dead_letter_queryset, outbox_event_queryset

pytestmark = pytest.mark.django_db(databases="__all__")


def outbox_row(tenant_id: str):
    module = get_module("ar")
    return module.outbox.objects.using(module.alias).create(
        event_id=uuid.uuid4(),
        event_type="ar.invoice.paid",
        subject="ar.events.ar.invoice.paid",
        aggregate_type="invoice",
        aggregate_id=str(uuid.uuid4()),
        aggregate_version=1,
        tenant_id=tenant_id,
        correlation_id=uuid.uuid4(),
        body="{}",
        created_at=timezone.now(),
    )


def dead_letter_row(tenant_id: str):
    module = get_module("ar")
    return module.dead_letters.objects.using(module.alias).create(
        consumer="ar",
        message_key=f"key-{tenant_id}",
        subject="payments.events.payments.payment.succeeded",
        tenant_id=tenant_id,
        body=b"{}",
        reason=DeadLetterReason.MALFORMED,
        error="not an envelope",
        deliveries=1,
        created_at=timezone.now(),
    )


class TestOutboxEventQueryset:
    def test_narrows_to_tenant(self):
        mine = outbox_row("acme")
        other = outbox_row("globex")

        assert list(outbox_event_queryset(module="ar", tenant_id="acme")) == [mine]
        assert set(outbox_event_queryset(module="ar")) == {mine, other}

    def test_unknown_module_raises(self):
        with pytest.raises(UnknownModule, match="unknown bus module 'billing'"):
            outbox_event_queryset(module="billing")


class TestDeadLetterQueryset:
    def test_narrows_to_tenant(self):
        mine = dead_letter_row("acme")
        other = dead_letter_row("globex")

        assert list(dead_letter_queryset(module="ar", tenant_id="acme")) == [mine]
        assert set(dead_letter_queryset(module="ar")) == {mine, other}

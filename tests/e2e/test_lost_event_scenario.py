"""The scenario that lost an event in the system this project replaces.

An invoice's collection request was published before the payments consumer
had ever subscribed. On core NATS it vanished, and the invoice stayed unpaid.
Here the request waits in JetStream for the payments durable consumer.
"""

import os
import threading
from datetime import UTC, date, datetime

import pytest
from django.core import mail
from django.db import connections

from ar.selectors import customer_id_for_external_id
from eventbus.backends import get_bus, reset_bus
from eventbus.registry import get_module
from eventbus.relay import relay_follow, relay_outbox
from tests.eventbus.conftest import consumers_running
from tests.support import delete_all_streams, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

AS_OF = date(2026, 3, 1)
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def nats_settings(settings):
    settings.EVENTBUS = {
        **settings.EVENTBUS,
        "BACKEND": "nats",
        "NATS_URLS": [os.environ["NATS_URL"]],
        "ACK_WAIT_SECONDS": 5.0,
        "BACKOFF_SECONDS": [0.2, 0.5, 1.0],
    }
    delete_all_streams(os.environ["NATS_URL"])
    reset_bus()
    yield
    reset_bus()


def create_customer_with_subscription(token: str = "tok_success") -> str:
    from ar.services import customer_upsert
    from billing.tenancy.services import tenant_ensure
    from payments.services import payment_method_upsert
    from subscriptions.services import plan_upsert, subscription_create

    tenant_ensure(tenant_id="acme", name="Acme", now=NOW)
    customer, _ = customer_upsert(
        tenant_id="acme", external_id="cust-1", name="Ada Lovelace", email="ada@example.com",
        currency="USD", collection_method="charge_automatically", now=NOW,
    )
    payment_method_upsert(tenant_id="acme", customer_id=str(customer.id), token=token, kind="card", now=NOW)
    plan_upsert(
        tenant_id="acme", code="pro", name="Pro", amount_minor=4900, currency="USD",
        interval="month", now=NOW,
    )
    subscription_create(
        tenant_id="acme", customer_id=str(customer.id), plan_code="pro", start_date=AS_OF, now=NOW,
    )
    return str(customer.id)


class TestLostEventScenario:
    def test_payments_consumer_started_late_still_collects(self, nats_settings):
        from ar.models import Invoice
        from payments.models import OutboxEvent as PaymentsOutbox
        from payments.models import ProcessedEvent as PaymentsInbox
        from subscriptions.services import bill_run_execute

        customer_id = create_customer_with_subscription()
        summary = bill_run_execute(as_of=AS_OF, now=NOW)
        assert summary.periods_billed == 1

        # Bill run events reach AR, and AR's collection request is relayed,
        # while no payments consumer has ever fetched.
        relay_outbox(module="subscriptions")
        with consumers_running(modules=("ar",)):
            wait_for(lambda: Invoice.objects.filter(customer_id=customer_id).exists(), timeout=30,
                     message="AR creating the invoice")
        assert relay_outbox(module="ar").published >= 2
        assert PaymentsInbox.objects.count() == 0

        stop = threading.Event()
        bus = get_bus()

        def relay_until_stopped():
            try:
                relay_follow(
                    modules=["subscriptions", "ar", "payments", "notifications"],
                    interval=0.1, should_stop=stop.is_set, bus=bus,
                )
            finally:
                connections.close_all()

        relay = threading.Thread(target=relay_until_stopped, daemon=True)
        relay.start()
        try:
            with consumers_running(modules=("payments", "ar", "notifications", "subscriptions")):
                invoice = wait_for(
                    lambda: Invoice.objects.filter(customer_id=customer_id, status="paid").first(),
                    timeout=60, message="the invoice becoming paid",
                )
                wait_for(lambda: len(mail.outbox) >= 2, timeout=30, message="the emails being sent")
        finally:
            stop.set()
            relay.join(timeout=30)

        assert invoice.amount_paid_minor == 4900
        assert PaymentsInbox.objects.filter(event_type="ar.payment.collection.requested").count() == 1
        assert PaymentsOutbox.objects.filter(event_type="payments.payment.succeeded").count() == 1
        recipients = {tuple(message.to) for message in mail.outbox}
        assert recipients == {("ada@example.com",)}
        assert get_module("payments").dead_letters.objects.count() == 0
        assert customer_id_for_external_id(tenant_id="acme", external_id="cust-1") == customer_id

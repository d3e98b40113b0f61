"""Two bill runs and two relays for the same modules run at the same time, as processes.

Two ``manage.py bill_run`` processes start while the test holds a row lock
on the first subscription, so both are inside their first batch when the
lock is released and bill against each other. Two ``relay_outbox --follow``
processes relay every module's outbox throughout. Every due period must be
billed once, every outbox row published by one relay pass and stored once
on its stream, and every invariant must hold.
"""

import json
import time
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone

from billing.invariants import invariants_check
from eventbus.models import OutboxState
from eventbus.registry import get_module, stream_name
from tests.eventbus.conftest import consumers_running, stream_envelopes
from tests.faults.conftest import assert_invariants_hold, bus_environment
from tests.support import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True, databases="__all__")]

TENANTS = ("acme", "globex")
SUBSCRIPTIONS_PER_TENANT = 10
MODULES = ("subscriptions", "ar", "payments", "notifications")
# Seconds from releasing the bill runs to the last invariant.
FLOW_SECONDS = 90


def create_subscriptions(now) -> list[str]:
    """Create each tenant's customers, each with a card and a monthly subscription due today."""
    from ar.services import customer_upsert
    from billing.tenancy.services import tenant_ensure
    from payments.services import payment_method_upsert
    from subscriptions.services import plan_upsert, subscription_create

    subscription_ids = []
    for tenant_id in TENANTS:
        tenant_ensure(tenant_id=tenant_id, name=tenant_id.title(), now=now)
        plan_upsert(
            tenant_id=tenant_id, code="pro", name="Pro", amount_minor=4900, currency="USD",
            interval="month", now=now,
        )
        for number in range(SUBSCRIPTIONS_PER_TENANT):
            customer, _ = customer_upsert(
                tenant_id=tenant_id, external_id=f"cust-{number}", name=f"Customer {number}",
                email=f"customer{number}@{tenant_id}.example", currency="USD",
                collection_method="charge_automatically", now=now,
            )
            payment_method_upsert(
                tenant_id=tenant_id, customer_id=str(customer.id), token="tok_success", kind="card", now=now
            )
            subscription = subscription_create(
                tenant_id=tenant_id, customer_id=str(customer.id), plan_code="pro",
                start_date=now.date(), now=now,
            )
            subscription_ids.append(str(subscription.id))
    return subscription_ids


def sessions_waiting_for_a_lock() -> int:
    """Count other sessions on the subscriptions database that wait for a lock."""
    database = connections["subscriptions"].settings_dict["NAME"]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
            [database],
        )
        return cursor.fetchone()[0]


def outbox_pending() -> int:
    return sum(
        get_module(name).outbox.objects.using(get_module(name).alias).filter(state=OutboxState.PENDING).count()
        for name in MODULES
    )


class TestConcurrentRuns:
    def test_two_bill_runs_and_two_relays(self, restartable_bus, nats_server, processes):
        from ar.models import Invoice
        from subscriptions.models import BillingPeriod, Subscription

        now = timezone.now()
        subscription_ids = create_subscriptions(now)
        expected = len(subscription_ids)
        environment = bus_environment(nats_server.url)
        relays = [
            processes.start(name, "relay_outbox", "--follow", "--interval", "0.1", env=environment)
            for name in ("relay-1", "relay-2")
        ]

        with transaction.atomic(using="subscriptions"):
            Subscription.objects.using("subscriptions").select_for_update().order_by("id").first()
            bill_runs = {
                name: processes.start(name, "bill_run", "--as-of", now.date().isoformat(), "--json", env=environment)
                for name in ("bill-run-1", "bill-run-2")
            }
            wait_for(
                lambda: sessions_waiting_for_a_lock() == 2, timeout=60, interval=0.1,
                message="both bill runs waiting for the first subscription's row lock",
            )
        deadline = time.monotonic() + FLOW_SECONDS

        billed = 0
        for name, process in bill_runs.items():
            assert process.wait(timeout=FLOW_SECONDS) == 0, f"{name} failed:\n" + processes.log(name)
            billed += json.loads(processes.log(name).strip().splitlines()[-1])["periods_billed"]
        assert billed == expected

        with consumers_running(modules=MODULES):
            wait_for(
                lambda: Invoice.objects.filter(status="paid").count() == expected,
                timeout=max(deadline - time.monotonic(), 0.1), interval=0.3, message="every invoice paid",
            )
            wait_for(
                lambda: outbox_pending() == 0,
                timeout=max(deadline - time.monotonic(), 0.1), interval=0.3, message="every outbox drained",
            )
            wait_for(
                lambda: invariants_check(stale_after=timedelta(0)).passed,
                timeout=max(deadline - time.monotonic(), 0.1), interval=0.5, message="every invariant holding",
            )

        for relay in relays:
            assert relay.poll() is None, "a relay exited:\n" + processes.log("relay-1") + processes.log("relay-2")
        assert BillingPeriod.objects.count() == expected
        billed_ids = BillingPeriod.objects.values_list("subscription_id", flat=True)
        assert sorted(str(subscription_id) for subscription_id in billed_ids) == sorted(subscription_ids)
        for name in MODULES:
            module = get_module(name)
            rows = module.outbox.objects.using(module.alias)
            assert rows.exists(), f"the {name} outbox is empty"
            assert not rows.exclude(state=OutboxState.PUBLISHED).exists()
            # A row published by both relays would have been counted twice.
            assert set(rows.values_list("publish_attempts", flat=True)) == {1}, f"{name} rows published twice"
            stored = [document["event_id"] for document in stream_envelopes(nats_server.url, stream_name(name))]
            assert len(stored) == len(set(stored)), f"{stream_name(name)} stores an event twice"
            assert sorted(stored) == sorted(str(event_id) for event_id in rows.values_list("event_id", flat=True))
        assert_invariants_hold(periods_billed_once=expected, charged_once=expected, events_applied=expected)
        for name in ("relay-1", "relay-2"):
            assert processes.stop(name) == 0

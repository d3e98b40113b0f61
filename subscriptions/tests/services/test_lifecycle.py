import threading
from datetime import date, datetime

import pytest
from django.db import connections

from subscriptions.errors import (
    DuplicateExternalId,
    InvalidSubscription,
    PlanInactive,
    PlanNotFound,
    SubscriptionNotFound,
    SubscriptionStateConflict,
    UnknownTenant,
)
from subscriptions.models import OutboxEvent, Subscription, SubscriptionStatus
from subscriptions.services import (
    bill_run_execute,
    subscription_cancel,
    subscription_change_plan,
    subscription_create,
    subscription_upsert_imported,
)
from subscriptions.tests.factories import NOW, TENANT_ID, PlanFactory, SubscriptionFactory
from subscriptions.tests.support import (
    ALIAS,
    billed_periods,
    morning_of,
    outbox_envelopes,
    outbox_payloads,
)

pytestmark = pytest.mark.django_db(databases="__all__")

CUSTOMER_ID = "4b0f1c9e-6d3a-4d8e-9d7e-2f1a3c5b7e90"
CREATED = "subscriptions.subscription.created"
CANCELED = "subscriptions.subscription.canceled"
PLAN_CHANGED = "subscriptions.subscription.plan_changed"


def reload(subscription) -> Subscription:
    return Subscription.objects.using(ALIAS).select_related("plan", "pending_plan").get(id=subscription.id)


def bill(as_of: date):
    return bill_run_execute(as_of=as_of, now=morning_of(as_of))


def create(**overrides) -> Subscription:
    arguments = {
        "tenant_id": TENANT_ID,
        "customer_id": CUSTOMER_ID,
        "plan_code": "pro",
        "start_date": date(2026, 1, 31),
        "now": NOW,
        **overrides,
    }
    return subscription_create(**arguments)


def import_row(**overrides) -> tuple[Subscription, bool]:
    arguments = {
        "tenant_id": TENANT_ID,
        "external_id": "legacy-17",
        "customer_id": CUSTOMER_ID,
        "plan_code": "pro",
        "start_date": date(2026, 1, 1),
        "now": NOW,
        **overrides,
    }
    return subscription_upsert_imported(**arguments)


def nothing_written() -> bool:
    return not Subscription.objects.using(ALIAS).exists() and not OutboxEvent.objects.using(ALIAS).exists()


class TestSubscriptionCreate:
    def test_creates_active_subscription(self, tenant):
        PlanFactory(code="pro", name="Pro", amount_minor=2900)

        subscription = create(quantity=2)

        stored = reload(subscription)
        assert stored.status == SubscriptionStatus.ACTIVE
        assert stored.customer_id == CUSTOMER_ID
        assert stored.started_on == date(2026, 1, 31)
        assert stored.billing_anchor_date == date(2026, 1, 31)
        assert stored.trial_end_date is None
        assert stored.current_period_start == date(2026, 1, 31)
        assert stored.current_period_end == date(2026, 2, 28)
        assert stored.quantity == 2
        assert stored.version == 1
        (envelope,) = outbox_envelopes(CREATED)
        assert envelope["aggregate_type"] == "subscription"
        assert envelope["aggregate_id"] == str(subscription.id)
        assert envelope["aggregate_version"] == 1
        assert envelope["payload"] == {
            "subscription_id": str(subscription.id),
            "customer_id": CUSTOMER_ID,
            "plan_code": "pro",
            "plan_name": "Pro",
            "status": "active",
            "quantity": 2,
            "unit_amount_minor": 2900,
            "currency": "USD",
            "started_at": "2026-01-31T00:00:00Z",
            "trial_end_date": None,
        }

    def test_trial_moves_anchor_to_trial_end(self, tenant):
        PlanFactory(code="pro", trial_days=14)

        subscription = create(start_date=date(2026, 1, 1))

        assert subscription.status == SubscriptionStatus.TRIALING
        assert subscription.trial_end_date == date(2026, 1, 15)
        assert subscription.billing_anchor_date == date(2026, 1, 15)
        assert subscription.current_period_start == date(2026, 1, 1)
        assert subscription.current_period_end == date(2026, 1, 15)
        assert outbox_payloads(CREATED)[0]["trial_end_date"] == "2026-01-15"

    def test_backdated_start_after_trial_is_active(self, tenant):
        PlanFactory(code="pro", trial_days=7)

        subscription = create(start_date=date(2025, 11, 1))

        assert subscription.status == SubscriptionStatus.ACTIVE
        assert subscription.billing_anchor_date == date(2025, 11, 8)

    def test_price_override_in_event(self, tenant):
        PlanFactory(code="pro", amount_minor=2900)

        create(price_override_minor=1900)

        assert outbox_payloads(CREATED)[0]["unit_amount_minor"] == 1900

    def test_customer_id_is_stored_canonical(self, tenant):
        PlanFactory(code="pro")

        subscription = create(customer_id=CUSTOMER_ID.upper())

        assert subscription.customer_id == CUSTOMER_ID

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"quantity": 0}, "quantity 0 is invalid; use a whole number from 1 to 1000000"),
            ({"quantity": True}, "quantity True is invalid; use a whole number from 1 to 1000000"),
            (
                {"price_override_minor": -100},
                "price_override_minor -100 is negative; use zero or more minor units, or None for the plan's price",
            ),
            (
                {"price_override_minor": "19.00"},
                "price_override_minor '19.00' is not a whole number of minor units; convert a decimal price "
                "with billing.money.to_minor_units, or pass None for the plan's price",
            ),
            ({"customer_id": "cust-1"}, "customer_id 'cust-1' is not a UUID; pass the id of the AR customer"),
            (
                {"start_date": datetime(2026, 1, 31, 12, 0)},
                "start_date datetime.datetime(2026, 1, 31, 12, 0) is not a date; "
                "pass a datetime.date such as date(2026, 1, 31)",
            ),
            ({"external_id": " "}, "external_id ' ' is empty; pass the id from the source system, or None"),
            (
                {"price_override_minor": 10**12 + 1},
                "price_override_minor 1000000000001 exceeds the maximum of 1000000000000 minor units",
            ),
        ],
        ids=[
            "zero-quantity", "boolean-quantity", "negative-override", "text-override", "customer-id",
            "datetime-start", "blank-external-id", "override-too-high",
        ],
    )
    def test_invalid_argument_is_rejected(self, tenant, change, message):
        PlanFactory(code="pro")

        with pytest.raises(InvalidSubscription) as raised:
            create(**change)

        assert raised.value.code == "invalid_subscription"
        assert str(raised.value) == message
        assert nothing_written()

    def test_unknown_plan_is_rejected(self, tenant):
        with pytest.raises(PlanNotFound) as raised:
            create(plan_code="platinum")

        assert raised.value.code == "plan_not_found"
        assert str(raised.value) == "plan 'platinum' does not exist in tenant 'acme'; create the plan first, for example with POST /api/v1/plans"
        assert nothing_written()

    def test_plan_of_other_tenant_is_not_found(self, tenant):
        PlanFactory(code="pro", tenant_id="globex")

        with pytest.raises(PlanNotFound):
            create()

        assert nothing_written()

    def test_unknown_tenant_is_rejected(self, tenant):
        with pytest.raises(UnknownTenant) as raised:
            create(tenant_id="initech")

        assert raised.value.code == "unknown_tenant"
        assert nothing_written()

    def test_taken_external_id_is_rejected(self, tenant):
        PlanFactory(code="pro")
        first = create(external_id="legacy-1")

        with pytest.raises(DuplicateExternalId) as raised:
            create(external_id="legacy-1")

        assert raised.value.code == "duplicate_external_id"
        assert str(raised.value) == (
            f"external_id 'legacy-1' is already used by subscription {first.id} in tenant 'acme'; "
            "update that subscription instead of creating another"
        )
        assert Subscription.objects.using(ALIAS).count() == 1
        assert len(outbox_payloads(CREATED)) == 1


class TestSubscriptionUpsertImported:
    def test_second_import_changes_nothing(self, tenant):
        PlanFactory(code="pro")
        first, first_created = import_row()

        second, second_created = import_row(now=morning_of(date(2026, 1, 20)))

        assert first_created is True
        assert second_created is False
        assert second.id == first.id
        assert Subscription.objects.using(ALIAS).count() == 1
        assert reload(first).version == 1
        assert OutboxEvent.objects.using(ALIAS).count() == 1

    def test_changed_row_before_billing_rewrites_dates(self, tenant):
        PlanFactory(code="pro")
        PlanFactory(code="team", trial_days=10)
        subscription, _ = import_row()

        updated, created = import_row(start_date=date(2026, 2, 1), plan_code="team", quantity=3)

        assert created is False
        stored = reload(updated)
        assert stored.plan.code == "team"
        assert stored.started_on == date(2026, 2, 1)
        assert stored.trial_end_date == date(2026, 2, 11)
        assert stored.billing_anchor_date == date(2026, 2, 11)
        assert stored.quantity == 3
        assert stored.version == 2
        assert outbox_payloads(PLAN_CHANGED) == [
            {
                "subscription_id": str(subscription.id),
                "customer_id": CUSTOMER_ID,
                "old_plan_code": "pro",
                "new_plan_code": "team",
                "effective_on": "2026-02-11",
            }
        ]

    def test_changed_row_after_billing_keeps_billed_periods(self, tenant):
        PlanFactory(code="pro", amount_minor=1000)
        PlanFactory(code="team", amount_minor=5000)
        subscription, _ = import_row()
        bill(date(2026, 1, 1))

        import_row(quantity=2, plan_code="team", now=morning_of(date(2026, 1, 10)))
        bill(date(2026, 2, 1))

        stored = reload(subscription)
        assert stored.quantity == 2
        assert stored.plan.code == "team"
        periods = list(stored.billing_periods.order_by("period_start").values_list("quantity", "plan_code", "amount_minor"))
        assert periods == [(1, "pro", 1000), (2, "team", 10000)]
        assert outbox_payloads(PLAN_CHANGED)[0]["effective_on"] == "2026-02-01"

    def test_start_date_of_billed_import_cannot_change(self, tenant):
        PlanFactory(code="pro")
        subscription, _ = import_row()
        bill(date(2026, 1, 1))
        version = reload(subscription).version

        with pytest.raises(SubscriptionStateConflict) as raised:
            import_row(start_date=date(2026, 1, 5), quantity=4)

        assert raised.value.code == "subscription_state_conflict"
        assert str(raised.value) == (
            f"imported subscription 'legacy-17' ({subscription.id}) has billed periods, so its start date "
            "cannot change from 2026-01-01 to 2026-01-05; cancel it and import the row under a new external_id"
        )
        stored = reload(subscription)
        assert stored.version == version
        assert stored.quantity == 1
        assert billed_periods(subscription) == [(date(2026, 1, 1), date(2026, 2, 1))]

    def test_canceled_import_cannot_change(self, tenant):
        PlanFactory(code="pro")
        subscription, _ = import_row()
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=False, now=NOW)

        with pytest.raises(SubscriptionStateConflict) as raised:
            import_row(quantity=2)

        assert str(raised.value) == (
            f"imported subscription 'legacy-17' ({subscription.id}) is canceled, so its quantity cannot "
            "change; import the row under a new external_id"
        )

    def test_missing_external_id_is_rejected(self, tenant):
        PlanFactory(code="pro")

        with pytest.raises(InvalidSubscription) as raised:
            import_row(external_id=None)

        assert str(raised.value) == "external_id is missing; an imported subscription needs the source system's id"
        assert nothing_written()


class TestSubscriptionCancel:
    def test_cancel_now(self, tenant):
        PlanFactory(code="pro", name="Pro")
        subscription = create(start_date=date(2026, 1, 1))
        canceled_at = morning_of(date(2026, 1, 10))

        canceled = subscription_cancel(subscription_id=str(subscription.id), at_period_end=False, now=canceled_at)

        stored = reload(canceled)
        assert stored.status == SubscriptionStatus.CANCELED
        assert stored.canceled_at == canceled_at
        assert stored.ends_on == date(2026, 1, 10)
        assert stored.cancel_at_period_end is False
        assert stored.version == 2
        (envelope,) = outbox_envelopes(CANCELED)
        assert envelope["aggregate_version"] == 2
        assert envelope["payload"] == {
            "subscription_id": str(subscription.id),
            "customer_id": CUSTOMER_ID,
            "plan_code": "pro",
            "plan_name": "Pro",
            "canceled_at": "2026-01-10T06:00:00Z",
            "ends_on": "2026-01-10",
            "at_period_end": False,
        }

    def test_cancel_at_period_end(self, tenant):
        PlanFactory(code="pro")
        subscription = create(start_date=date(2026, 1, 31))

        canceled = subscription_cancel(
            subscription_id=str(subscription.id), at_period_end=True, now=morning_of(date(2026, 2, 10))
        )

        assert canceled.status == SubscriptionStatus.ACTIVE
        assert canceled.cancel_at_period_end is True
        assert canceled.ends_on == date(2026, 2, 28)
        assert outbox_payloads(CANCELED)[0]["at_period_end"] is True
        assert outbox_payloads(CANCELED)[0]["ends_on"] == "2026-02-28"

    def test_period_end_follows_billed_periods(self, tenant):
        PlanFactory(code="pro")
        subscription = create(start_date=date(2026, 1, 1))
        bill(date(2026, 3, 1))

        canceled = subscription_cancel(
            subscription_id=str(subscription.id), at_period_end=True, now=morning_of(date(2026, 1, 20))
        )

        assert canceled.ends_on == date(2026, 4, 1)

    def test_second_cancel_at_period_end_is_rejected(self, tenant):
        PlanFactory(code="pro")
        subscription = create(start_date=date(2026, 1, 1))
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=True, now=NOW)

        with pytest.raises(SubscriptionStateConflict) as raised:
            subscription_cancel(subscription_id=str(subscription.id), at_period_end=True, now=NOW)

        assert str(raised.value) == (
            f"subscription {subscription.id} is already set to cancel on 2026-02-01; "
            "cancel with at_period_end=False to end it now"
        )
        assert reload(subscription).version == 2

    def test_cancel_now_after_period_end_cancel(self, tenant):
        PlanFactory(code="pro")
        subscription = create(start_date=date(2026, 1, 1))
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=True, now=NOW)

        canceled = subscription_cancel(
            subscription_id=str(subscription.id), at_period_end=False, now=morning_of(date(2026, 1, 5))
        )

        assert canceled.status == SubscriptionStatus.CANCELED
        assert canceled.ends_on == date(2026, 1, 5)
        assert len(outbox_payloads(CANCELED)) == 2

    def test_canceled_subscription_cannot_cancel_again(self, tenant):
        PlanFactory(code="pro")
        subscription = create(start_date=date(2026, 1, 1))
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=False, now=NOW)

        with pytest.raises(SubscriptionStateConflict) as raised:
            subscription_cancel(subscription_id=str(subscription.id), at_period_end=False, now=NOW)

        assert str(raised.value) == (
            f"subscription {subscription.id} is already canceled; its service ended on 2026-01-01"
        )
        assert len(outbox_payloads(CANCELED)) == 1

    @pytest.mark.parametrize(
        ("subscription_id", "message"),
        [
            ("9d4c4b8e-7f2e-4a57-9d55-3f3b1a0c2e11", "subscription '9d4c4b8e-7f2e-4a57-9d55-3f3b1a0c2e11' does not exist"),
            ("sub-1", "subscription 'sub-1' does not exist: it is not a UUID"),
        ],
        ids=["unknown", "not-uuid"],
    )
    def test_unknown_subscription_is_rejected(self, tenant, subscription_id, message):
        with pytest.raises(SubscriptionNotFound) as raised:
            subscription_cancel(subscription_id=subscription_id, at_period_end=False, now=NOW)

        assert raised.value.code == "subscription_not_found"
        assert str(raised.value) == message
        assert not OutboxEvent.objects.using(ALIAS).exists()

    def test_cancel_clears_plan_change_after_ends_on(self, tenant):
        PlanFactory(code="pro")
        PlanFactory(code="team")
        subscription = create(start_date=date(2026, 1, 1))
        subscription_change_plan(subscription_id=str(subscription.id), plan_code="team", now=NOW)

        canceled = subscription_cancel(subscription_id=str(subscription.id), at_period_end=True, now=NOW)

        assert canceled.ends_on == date(2026, 2, 1)
        assert canceled.pending_plan is None
        assert canceled.pending_plan_effective_on is None


class TestSubscriptionChangePlan:
    def test_change_is_pending_until_next_period(self, tenant):
        PlanFactory(code="pro")
        PlanFactory(code="team")
        subscription = create(start_date=date(2026, 1, 31))

        changed = subscription_change_plan(
            subscription_id=str(subscription.id), plan_code="team", now=morning_of(date(2026, 2, 10))
        )

        stored = reload(changed)
        assert stored.plan.code == "pro"
        assert stored.pending_plan.code == "team"
        assert stored.pending_plan_effective_on == date(2026, 2, 28)
        assert stored.version == 2
        (envelope,) = outbox_envelopes(PLAN_CHANGED)
        assert envelope["aggregate_version"] == 2
        assert envelope["payload"] == {
            "subscription_id": str(subscription.id),
            "customer_id": CUSTOMER_ID,
            "old_plan_code": "pro",
            "new_plan_code": "team",
            "effective_on": "2026-02-28",
        }

    def test_change_during_trial_takes_effect_at_trial_end(self, tenant):
        PlanFactory(code="pro", trial_days=14)
        PlanFactory(code="team")
        subscription = create(start_date=date(2026, 1, 1))

        changed = subscription_change_plan(subscription_id=str(subscription.id), plan_code="team", now=NOW)

        assert changed.pending_plan_effective_on == date(2026, 1, 15)

    def test_current_plan_withdraws_pending_change(self, tenant):
        PlanFactory(code="pro")
        PlanFactory(code="team")
        subscription = create(start_date=date(2026, 1, 1))
        subscription_change_plan(subscription_id=str(subscription.id), plan_code="team", now=NOW)

        changed = subscription_change_plan(subscription_id=str(subscription.id), plan_code="pro", now=NOW)

        assert changed.pending_plan is None
        assert changed.pending_plan_effective_on is None
        assert outbox_payloads(PLAN_CHANGED)[1] == {
            "subscription_id": str(subscription.id),
            "customer_id": CUSTOMER_ID,
            "old_plan_code": "team",
            "new_plan_code": "pro",
            "effective_on": "2026-02-01",
        }

    def test_same_plan_is_rejected(self, tenant):
        PlanFactory(code="pro")
        subscription = create()

        with pytest.raises(SubscriptionStateConflict) as raised:
            subscription_change_plan(subscription_id=str(subscription.id), plan_code="pro", now=NOW)

        assert str(raised.value) == f"subscription {subscription.id} is already on plan 'pro'"
        assert reload(subscription).version == 1
        assert outbox_payloads(PLAN_CHANGED) == []

    def test_other_currency_is_rejected(self, tenant):
        PlanFactory(code="pro", currency="USD")
        PlanFactory(code="pro-eur", currency="EUR")
        subscription = create()

        with pytest.raises(InvalidSubscription) as raised:
            subscription_change_plan(subscription_id=str(subscription.id), plan_code="pro-eur", now=NOW)

        assert str(raised.value) == (
            f"plan 'pro-eur' bills in EUR but subscription {subscription.id} bills in USD; "
            "choose a plan in USD"
        )
        assert reload(subscription).pending_plan is None
        assert outbox_payloads(PLAN_CHANGED) == []

    def test_change_after_period_end_cancel_is_rejected(self, tenant):
        PlanFactory(code="pro")
        PlanFactory(code="team")
        subscription = create(start_date=date(2026, 1, 1))
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=True, now=NOW)

        with pytest.raises(SubscriptionStateConflict) as raised:
            subscription_change_plan(subscription_id=str(subscription.id), plan_code="team", now=NOW)

        assert str(raised.value) == (
            f"subscription {subscription.id} ends on 2026-02-01, so a plan change from its next period "
            "would never bill; subscribe the customer to the new plan instead"
        )

    def test_second_change_waits_for_bill_run(self, tenant):
        PlanFactory(code="pro")
        PlanFactory(code="team")
        PlanFactory(code="enterprise")
        subscription = create(start_date=date(2026, 1, 1))
        subscription_change_plan(subscription_id=str(subscription.id), plan_code="team", now=NOW)

        with pytest.raises(SubscriptionStateConflict) as raised:
            subscription_change_plan(
                subscription_id=str(subscription.id), plan_code="enterprise", now=morning_of(date(2026, 2, 3))
            )

        assert str(raised.value) == (
            f"subscription {subscription.id} moved to plan 'team' on 2026-02-01, but no bill run has billed "
            "that period yet; run the bill run, then change the plan"
        )

        bill(date(2026, 2, 3))
        changed = subscription_change_plan(
            subscription_id=str(subscription.id), plan_code="enterprise", now=morning_of(date(2026, 2, 3))
        )

        assert changed.plan.code == "team"
        assert changed.pending_plan.code == "enterprise"
        assert changed.pending_plan_effective_on == date(2026, 3, 1)

    def test_inactive_or_unknown_plan_is_rejected(self, tenant):
        PlanFactory(code="pro")
        PlanFactory(code="legacy", active=False)
        subscription = create()

        with pytest.raises(PlanNotFound):
            subscription_change_plan(subscription_id=str(subscription.id), plan_code="platinum", now=NOW)
        with pytest.raises(PlanInactive) as raised:
            subscription_change_plan(subscription_id=str(subscription.id), plan_code="legacy", now=NOW)

        assert raised.value.code == "plan_inactive"
        assert outbox_payloads(PLAN_CHANGED) == []

    def test_subscription_factory_uses_service(self, tenant):
        subscription = SubscriptionFactory()

        assert reload(subscription).version == 1
        assert len(outbox_payloads(CREATED)) == 1


@pytest.mark.django_db(transaction=True, databases="__all__")
class TestConcurrentImports:
    def test_same_row_imported_at_once_creates_one(self):
        PlanFactory(code="pro")
        SubscriptionFactory()  # Creates the tenant.
        barrier = threading.Barrier(2)
        results, errors = [], []

        def run(quantity: int):
            try:
                barrier.wait(timeout=30)
                results.append(import_row(quantity=quantity))
            except BaseException as error:  # noqa: BLE001 - reported by the assert below
                errors.append(error)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run, args=(quantity,)) for quantity in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert errors == []
        assert sorted(created for _, created in results) == [False, True]
        assert Subscription.objects.using(ALIAS).filter(external_id="legacy-17").count() == 1
        assert len({subscription.id for subscription, _ in results}) == 1


class TestStartDateRange:
    def test_start_date_near_year_9999_is_rejected(self):
        from subscriptions.errors import InvalidSubscription

        plan = PlanFactory()

        with pytest.raises(InvalidSubscription) as raised:
            subscription_create(
                tenant_id=plan.tenant_id, customer_id=CUSTOMER_ID, plan_code=plan.code,
                start_date=date(9999, 12, 31), now=NOW,
            )

        assert str(raised.value) == "start_date 9999-12-31 is outside the supported range 1970-01-01 to 2199-12-31"
        assert Subscription.objects.count() == 0

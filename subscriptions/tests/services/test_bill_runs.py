import threading
import uuid
from datetime import date

import pytest
from django.db import IntegrityError, connections, transaction
from django.test.utils import CaptureQueriesContext

from subscriptions.errors import InvalidBillRun, InvalidTimestamp, UnknownTenant
from subscriptions.models import (
    BillingPeriod,
    BillRun,
    BillRunStatus,
    OutboxEvent,
    Subscription,
    SubscriptionStatus,
)
from subscriptions.services import (
    bill_run_execute,
    bill_runs,
    subscription_cancel,
    subscription_change_plan,
)
from subscriptions.tests.factories import TENANT_ID, PlanFactory, SubscriptionFactory
from subscriptions.tests.support import (
    ALIAS,
    billed_periods,
    morning_of,
    outbox_envelopes,
    outbox_payloads,
)

pytestmark = pytest.mark.django_db(databases="__all__")

INVOICE_REQUESTED = "subscriptions.invoice.requested"


def bill(as_of: date, **options):
    return bill_run_execute(as_of=as_of, now=morning_of(as_of), **options)


def reload(subscription) -> Subscription:
    return Subscription.objects.using(ALIAS).select_related("plan").get(id=subscription.id)


class TestMonthEndAnchors:
    @pytest.mark.parametrize(
        ("start", "run_dates", "expected"),
        [
            (
                date(2027, 1, 31),
                [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31)],
                [
                    (date(2027, 1, 31), date(2027, 2, 28)),
                    (date(2027, 2, 28), date(2027, 3, 31)),
                    (date(2027, 3, 31), date(2027, 4, 30)),
                ],
            ),
            (
                date(2028, 1, 31),
                [date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31)],
                [
                    (date(2028, 1, 31), date(2028, 2, 29)),
                    (date(2028, 2, 29), date(2028, 3, 31)),
                    (date(2028, 3, 31), date(2028, 4, 30)),
                ],
            ),
            (
                date(2027, 1, 30),
                [date(2027, 1, 30), date(2027, 2, 28), date(2027, 3, 30)],
                [
                    (date(2027, 1, 30), date(2027, 2, 28)),
                    (date(2027, 2, 28), date(2027, 3, 30)),
                    (date(2027, 3, 30), date(2027, 4, 30)),
                ],
            ),
            (
                date(2028, 1, 29),
                [date(2028, 1, 29), date(2028, 2, 29), date(2028, 3, 29)],
                [
                    (date(2028, 1, 29), date(2028, 2, 29)),
                    (date(2028, 2, 29), date(2028, 3, 29)),
                    (date(2028, 3, 29), date(2028, 4, 29)),
                ],
            ),
        ],
        ids=["31st-non-leap", "31st-leap", "30th-non-leap", "29th-leap"],
    )
    def test_monthly_runs_across_february(self, start, run_dates, expected):
        subscription = SubscriptionFactory(start_date=start)

        for run_date in run_dates:
            summary = bill(run_date)
            assert summary.periods_billed == 1, run_date

        assert billed_periods(subscription) == expected

    def test_day_before_february_end_is_not_due(self):
        subscription = SubscriptionFactory(start_date=date(2027, 1, 31))
        bill(date(2027, 1, 31))

        summary = bill(date(2027, 2, 27))

        assert summary.periods_billed == 0
        assert summary.skipped == {"not_due": 1}
        assert billed_periods(subscription) == [(date(2027, 1, 31), date(2027, 2, 28))]


class TestIntervals:
    def test_fortnightly_catches_up(self):
        plan = PlanFactory(interval="week", interval_count=2)
        subscription = SubscriptionFactory(plan=plan, start_date=date(2026, 1, 5))

        summary = bill(date(2026, 2, 16))

        assert summary.periods_billed == 4
        assert billed_periods(subscription) == [
            (date(2026, 1, 5), date(2026, 1, 19)),
            (date(2026, 1, 19), date(2026, 2, 2)),
            (date(2026, 2, 2), date(2026, 2, 16)),
            (date(2026, 2, 16), date(2026, 3, 2)),
        ]

    def test_yearly_from_leap_day(self):
        plan = PlanFactory(interval="year", interval_count=1, amount_minor=29900)
        subscription = SubscriptionFactory(plan=plan, start_date=date(2028, 2, 29))

        summary = bill(date(2030, 3, 1))

        assert summary.periods_billed == 3
        assert billed_periods(subscription) == [
            (date(2028, 2, 29), date(2029, 2, 28)),
            (date(2029, 2, 28), date(2030, 2, 28)),
            (date(2030, 2, 28), date(2031, 2, 28)),
        ]

    def test_every_three_days(self):
        plan = PlanFactory(interval="day", interval_count=3)
        subscription = SubscriptionFactory(plan=plan, start_date=date(2026, 2, 27))

        bill(date(2026, 3, 4))

        assert billed_periods(subscription) == [
            (date(2026, 2, 27), date(2026, 3, 2)),
            (date(2026, 3, 2), date(2026, 3, 5)),
        ]


class TestCatchUp:
    def test_missed_periods_are_billed_in_order(self):
        subscription = SubscriptionFactory(start_date=date(2026, 1, 31))

        summary = bill(date(2026, 5, 15))

        assert summary.periods_billed == 4
        assert billed_periods(subscription) == [
            (date(2026, 1, 31), date(2026, 2, 28)),
            (date(2026, 2, 28), date(2026, 3, 31)),
            (date(2026, 3, 31), date(2026, 4, 30)),
            (date(2026, 4, 30), date(2026, 5, 31)),
        ]
        subscription = reload(subscription)
        assert subscription.current_period_start == date(2026, 4, 30)
        assert subscription.current_period_end == date(2026, 5, 31)
        # Created at version 1, then one version per billed period.
        assert subscription.version == 5
        assert [envelope["aggregate_version"] for envelope in outbox_envelopes(INVOICE_REQUESTED)] == [2, 3, 4, 5]

    def test_rerun_bills_nothing(self):
        SubscriptionFactory(start_date=date(2026, 1, 1))
        first = bill(date(2026, 3, 1))
        outbox_before = OutboxEvent.objects.using(ALIAS).count()

        second = bill(date(2026, 3, 1))

        assert first.periods_billed == 3
        assert second.periods_billed == 0
        assert second.skipped == {"not_due": 1}
        assert BillingPeriod.objects.using(ALIAS).count() == 3
        assert OutboxEvent.objects.using(ALIAS).count() == outbox_before

    def test_future_start_is_not_started(self):
        subscription = SubscriptionFactory(start_date=date(2026, 3, 1))

        summary = bill(date(2026, 2, 1))

        assert summary.skipped == {"not_started": 1}
        assert billed_periods(subscription) == []


class TestTrials:
    def test_trial_is_skipped_until_it_ends(self):
        plan = PlanFactory(trial_days=14)
        subscription = SubscriptionFactory(plan=plan, start_date=date(2026, 1, 1))
        assert subscription.status == SubscriptionStatus.TRIALING
        assert subscription.trial_end_date == date(2026, 1, 15)
        assert subscription.billing_anchor_date == date(2026, 1, 15)

        during = bill(date(2026, 1, 14))

        assert during.periods_billed == 0
        assert during.skipped == {"trialing": 1}
        assert reload(subscription).status == SubscriptionStatus.TRIALING

        after = bill(date(2026, 1, 15))

        assert after.periods_billed == 1
        assert billed_periods(subscription) == [(date(2026, 1, 15), date(2026, 2, 15))]
        assert reload(subscription).status == SubscriptionStatus.ACTIVE


class TestCancellation:
    def test_canceled_now_bills_nothing_more(self):
        subscription = SubscriptionFactory(start_date=date(2026, 1, 1))
        bill(date(2026, 1, 1))
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=False, now=morning_of(date(2026, 1, 10)))

        summary = bill(date(2026, 3, 1))

        assert summary.subscriptions_seen == 0
        assert summary.periods_billed == 0
        assert billed_periods(subscription) == [(date(2026, 1, 1), date(2026, 2, 1))]

    def test_cancel_at_period_end_bills_until_ends_on(self):
        subscription = SubscriptionFactory(start_date=date(2026, 1, 1))
        bill(date(2026, 1, 1))
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=True, now=morning_of(date(2026, 1, 10)))

        before_end = bill(date(2026, 1, 31))

        assert before_end.skipped == {"not_due": 1}
        assert reload(subscription).status == SubscriptionStatus.ACTIVE

        at_end = bill(date(2026, 2, 1))

        assert at_end.periods_billed == 0
        assert at_end.skipped == {"ended": 1}
        subscription = reload(subscription)
        assert subscription.status == SubscriptionStatus.CANCELED
        assert subscription.ends_on == date(2026, 2, 1)
        assert billed_periods(subscription) == [(date(2026, 1, 1), date(2026, 2, 1))]

    def test_catch_up_stops_at_ends_on(self):
        subscription = SubscriptionFactory(start_date=date(2026, 1, 1))
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=True, now=morning_of(date(2026, 2, 10)))

        summary = bill(date(2026, 4, 1))

        assert summary.periods_billed == 2
        assert billed_periods(subscription) == [
            (date(2026, 1, 1), date(2026, 2, 1)),
            (date(2026, 2, 1), date(2026, 3, 1)),
        ]
        assert reload(subscription).status == SubscriptionStatus.CANCELED

    def test_cancel_during_trial_bills_nothing(self):
        plan = PlanFactory(trial_days=30)
        subscription = SubscriptionFactory(plan=plan, start_date=date(2026, 1, 1))
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=True, now=morning_of(date(2026, 1, 5)))

        summary = bill(date(2026, 3, 1))

        assert summary.skipped == {"ended": 1}
        assert billed_periods(subscription) == []
        assert reload(subscription).status == SubscriptionStatus.CANCELED


class TestPlanChange:
    def test_new_plan_bills_from_next_period(self):
        pro = PlanFactory(code="pro", name="Pro", amount_minor=2900)
        PlanFactory(code="team", name="Team", amount_minor=9900)
        subscription = SubscriptionFactory(plan=pro, start_date=date(2026, 1, 31), quantity=2)
        bill(date(2026, 1, 31))
        subscription_change_plan(subscription_id=str(subscription.id), plan_code="team", now=morning_of(date(2026, 2, 10)))

        summary = bill(date(2026, 3, 31))

        assert summary.periods_billed == 2
        periods = list(BillingPeriod.objects.using(ALIAS).order_by("period_start"))
        assert [(period.plan_code, period.amount_minor) for period in periods] == [
            ("pro", 5800),
            ("team", 19800),
            ("team", 19800),
        ]
        subscription = reload(subscription)
        assert subscription.plan.code == "team"
        assert subscription.pending_plan_id is None
        assert subscription.pending_plan_effective_on is None
        assert subscription.billing_anchor_date == date(2026, 1, 31)
        assert billed_periods(subscription)[1:] == [
            (date(2026, 2, 28), date(2026, 3, 31)),
            (date(2026, 3, 31), date(2026, 4, 30)),
        ]

    def test_change_within_one_catch_up(self):
        basic = PlanFactory(code="basic", amount_minor=1000)
        PlanFactory(code="plus", amount_minor=2000)
        subscription = SubscriptionFactory(plan=basic, start_date=date(2026, 1, 1))
        subscription_change_plan(subscription_id=str(subscription.id), plan_code="plus", now=morning_of(date(2026, 1, 10)))

        bill(date(2026, 3, 1))

        periods = list(BillingPeriod.objects.using(ALIAS).order_by("period_start"))
        assert [(period.period_start, period.plan_code, period.amount_minor) for period in periods] == [
            (date(2026, 1, 1), "basic", 1000),
            (date(2026, 2, 1), "plus", 2000),
            (date(2026, 3, 1), "plus", 2000),
        ]

    def test_monthly_to_yearly_counts_from_effective_date(self):
        monthly = PlanFactory(code="monthly", amount_minor=1000)
        PlanFactory(code="yearly", amount_minor=10000, interval="year")
        subscription = SubscriptionFactory(plan=monthly, start_date=date(2026, 1, 31))
        bill(date(2026, 1, 31))
        subscription_change_plan(subscription_id=str(subscription.id), plan_code="yearly", now=morning_of(date(2026, 2, 1)))

        bill(date(2027, 3, 1))

        assert billed_periods(subscription) == [
            (date(2026, 1, 31), date(2026, 2, 28)),
            (date(2026, 2, 28), date(2027, 2, 28)),
            (date(2027, 2, 28), date(2028, 2, 28)),
        ]
        assert reload(subscription).billing_anchor_date == date(2026, 2, 28)

    def test_price_override_ends_with_plan_change(self):
        basic = PlanFactory(code="basic", amount_minor=1000)
        PlanFactory(code="plus", amount_minor=2000)
        subscription = SubscriptionFactory(plan=basic, start_date=date(2026, 1, 1), price_override_minor=700)
        subscription_change_plan(subscription_id=str(subscription.id), plan_code="plus", now=morning_of(date(2026, 1, 10)))

        bill(date(2026, 2, 1))

        amounts = list(BillingPeriod.objects.using(ALIAS).order_by("period_start").values_list("amount_minor", flat=True))
        assert amounts == [700, 2000]
        assert reload(subscription).price_override_minor is None


class TestAmounts:
    def test_quantity_times_override(self):
        subscription = SubscriptionFactory(quantity=3, price_override_minor=1500, start_date=date(2026, 1, 1))

        summary = bill(date(2026, 1, 1))

        period = BillingPeriod.objects.using(ALIAS).get(subscription_id=subscription.id)
        assert period.unit_amount_minor == 1500
        assert period.amount_minor == 4500
        assert summary.amount_minor_by_currency == {"USD": 4500}

    def test_past_due_subscription_is_still_billed(self):
        subscription = SubscriptionFactory(start_date=date(2026, 1, 1))
        Subscription.objects.using(ALIAS).filter(id=subscription.id).update(status=SubscriptionStatus.PAST_DUE)

        summary = bill(date(2026, 1, 1))

        assert summary.periods_billed == 1
        assert reload(subscription).status == SubscriptionStatus.PAST_DUE


class TestOutbox:
    def test_one_event_per_period_with_payload(self):
        plan = PlanFactory(code="pro", name="Pro", amount_minor=2900, currency="USD")
        subscription = SubscriptionFactory(plan=plan, start_date=date(2026, 1, 31), quantity=2)

        summary = bill(date(2026, 2, 28))

        periods = list(BillingPeriod.objects.using(ALIAS).order_by("period_start"))
        envelopes = outbox_envelopes(INVOICE_REQUESTED)
        assert len(periods) == 2
        assert len(envelopes) == 2
        first = envelopes[0]
        assert first["aggregate_type"] == "subscription"
        assert first["aggregate_id"] == str(subscription.id)
        assert first["aggregate_version"] == 2
        assert first["tenant_id"] == TENANT_ID
        assert first["correlation_id"] == summary.bill_run_id
        assert first["occurred_at"] == "2026-02-28T06:00:00Z"
        assert first["payload"] == {
            "billing_period_id": str(periods[0].id),
            "subscription_id": str(subscription.id),
            "customer_id": subscription.customer_id,
            "plan_code": "pro",
            "plan_name": "Pro",
            "period_start": "2026-01-31",
            "period_end": "2026-02-28",
            "quantity": 2,
            "unit_amount_minor": 2900,
            "amount_minor": 5800,
            "currency": "USD",
            "description": "Pro plan, 2026-01-31 to 2026-02-28",
            "bill_run_id": summary.bill_run_id,
        }
        assert envelopes[1]["payload"]["billing_period_id"] == str(periods[1].id)
        assert envelopes[1]["payload"]["description"] == "Pro plan, 2026-02-28 to 2026-03-31"

    def test_events_match_periods_across_subscriptions(self):
        for start in (date(2026, 1, 1), date(2026, 1, 15), date(2026, 2, 1)):
            SubscriptionFactory(start_date=start)

        bill(date(2026, 3, 1))

        period_ids = set(BillingPeriod.objects.using(ALIAS).values_list("id", flat=True))
        event_period_ids = [payload["billing_period_id"] for payload in outbox_payloads(INVOICE_REQUESTED)]
        assert len(period_ids) == 7
        assert sorted(event_period_ids) == sorted(str(period_id) for period_id in period_ids)


class TestDryRun:
    def test_dry_run_writes_nothing(self):
        subscriptions = [SubscriptionFactory(start_date=date(2026, 1, 1)) for _ in range(3)]
        outbox_before = OutboxEvent.objects.using(ALIAS).count()
        versions_before = {item.id: reload(item).version for item in subscriptions}

        preview = bill(date(2026, 2, 1), dry_run=True)

        assert preview.dry_run is True
        assert preview.periods_billed == 6
        assert preview.amount_minor_by_currency == {"USD": 6 * 2900}
        assert BillingPeriod.objects.using(ALIAS).count() == 0
        assert OutboxEvent.objects.using(ALIAS).count() == outbox_before
        assert {item.id: reload(item).version for item in subscriptions} == versions_before
        run = BillRun.objects.using(ALIAS).get()
        assert str(run.id) == preview.bill_run_id
        assert run.dry_run is True
        assert run.status == BillRunStatus.COMPLETED
        assert run.periods_billed == 6

        real = bill(date(2026, 2, 1))

        assert real.periods_billed == preview.periods_billed
        assert real.skipped == preview.skipped


class TestBillRunRecord:
    def test_records_counts_and_timing(self):
        SubscriptionFactory(start_date=date(2026, 1, 1))
        SubscriptionFactory(start_date=date(2026, 5, 1))
        SubscriptionFactory(plan=PlanFactory(trial_days=60), start_date=date(2026, 1, 1))

        summary = bill(date(2026, 2, 1))

        run = BillRun.objects.using(ALIAS).get(id=summary.bill_run_id)
        assert run.status == BillRunStatus.COMPLETED
        assert run.as_of == date(2026, 2, 1)
        assert run.tenant_id is None
        assert run.dry_run is False
        assert run.subscriptions_seen == 3
        assert run.periods_billed == 2
        assert run.skipped == {"not_started": 1, "trialing": 1}
        assert run.amount_minor_by_currency == {"USD": 5800}
        assert run.started_at == morning_of(date(2026, 2, 1))
        assert run.finished_at >= run.started_at
        assert run.elapsed_seconds == summary.elapsed_seconds
        assert BillingPeriod.objects.using(ALIAS).filter(bill_run_id=run.id).count() == 2

    def test_tenant_filter(self):
        SubscriptionFactory(start_date=date(2026, 1, 1))
        other = SubscriptionFactory(tenant_id="globex", start_date=date(2026, 1, 1))

        summary = bill(date(2026, 1, 1), tenant_id="globex")

        assert summary.subscriptions_seen == 1
        assert BillingPeriod.objects.using(ALIAS).get().subscription_id == other.id
        assert BillRun.objects.using(ALIAS).get().tenant_id == "globex"

    def test_progress_reports_each_batch(self, monkeypatch):
        monkeypatch.setattr(bill_runs, "BILL_RUN_BATCH_SIZE", 2)
        for _ in range(5):
            SubscriptionFactory(start_date=date(2026, 1, 1))
        calls = []

        summary = bill(date(2026, 1, 1), progress=lambda done, total: calls.append((done, total)))

        assert calls == [(0, 5), (2, 5), (4, 5), (5, 5)]
        assert summary.periods_billed == 5

    def test_failed_batch_marks_run_failed(self, monkeypatch):
        monkeypatch.setattr(bill_runs, "BILL_RUN_BATCH_SIZE", 2)
        for _ in range(4):
            SubscriptionFactory(start_date=date(2026, 1, 1))
        real_append = bill_runs.outbox_append_many
        appends = []

        def append_then_fail(**kwargs):
            appends.append(kwargs)
            if len(appends) == 2:
                raise RuntimeError("outbox insert failed")
            return real_append(**kwargs)

        monkeypatch.setattr(bill_runs, "outbox_append_many", append_then_fail)

        with pytest.raises(RuntimeError):
            bill(date(2026, 1, 1))

        run = BillRun.objects.using(ALIAS).get()
        assert run.status == BillRunStatus.FAILED
        assert run.error == "RuntimeError('outbox insert failed')"
        assert run.subscriptions_seen == 2
        assert run.periods_billed == 2
        # The first batch committed; the second rolled back whole.
        assert BillingPeriod.objects.using(ALIAS).count() == 2
        assert len(outbox_payloads(INVOICE_REQUESTED)) == 2

        monkeypatch.setattr(bill_runs, "outbox_append_many", real_append)
        rerun = bill(date(2026, 1, 1))

        assert rerun.periods_billed == 2
        assert BillingPeriod.objects.using(ALIAS).count() == 4


class TestValidation:
    def test_datetime_as_of_is_rejected(self):
        with pytest.raises(InvalidBillRun) as raised:
            bill_run_execute(as_of=morning_of(date(2026, 1, 1)), now=morning_of(date(2026, 1, 1)))

        assert raised.value.code == "invalid_bill_run"
        assert str(raised.value) == (
            "as_of datetime.datetime(2026, 1, 1, 6, 0, tzinfo=datetime.timezone.utc) is not a date; "
            "pass a datetime.date such as date(2026, 1, 31)"
        )
        assert BillRun.objects.using(ALIAS).count() == 0

    def test_naive_now_is_rejected(self):
        from datetime import datetime

        with pytest.raises(InvalidTimestamp) as raised:
            bill_run_execute(as_of=date(2026, 1, 1), now=datetime(2026, 1, 1, 6, 0))

        assert raised.value.code == "invalid_timestamp"
        assert str(raised.value) == (
            "now datetime.datetime(2026, 1, 1, 6, 0) has no time zone; "
            "pass an aware UTC datetime such as datetime.now(UTC)"
        )
        assert BillRun.objects.using(ALIAS).count() == 0

    def test_unknown_tenant_is_rejected(self, tenant):
        with pytest.raises(UnknownTenant) as raised:
            bill(date(2026, 1, 1), tenant_id="nobody")

        assert raised.value.code == "unknown_tenant"
        assert str(raised.value) == (
            "tenant 'nobody' does not exist; create it first with manage.py tenants create nobody"
        )
        assert BillRun.objects.using(ALIAS).count() == 0


class TestBilledOnce:
    def test_database_rejects_second_bill_of_period(self):
        subscription = SubscriptionFactory(start_date=date(2026, 1, 1))
        bill(date(2026, 1, 1))
        period = BillingPeriod.objects.using(ALIAS).get()

        with pytest.raises(IntegrityError) as raised:
            with transaction.atomic(using=ALIAS):
                BillingPeriod.objects.using(ALIAS).create(
                    **{
                        field.attname: getattr(period, field.attname)
                        for field in BillingPeriod._meta.concrete_fields
                        if field.attname != "id"
                    },
                    id=uuid.uuid4(),
                )

        assert "subscriptions_period_billed_once" in str(raised.value)
        assert billed_periods(subscription) == [(date(2026, 1, 1), date(2026, 2, 1))]


@pytest.mark.django_db(transaction=True, databases="__all__")
class TestConcurrentRuns:
    def test_two_runs_bill_each_period_once(self, monkeypatch):
        # Small batches, so the two runs interleave over many transactions.
        monkeypatch.setattr(bill_runs, "BILL_RUN_BATCH_SIZE", 25)
        plan = PlanFactory()
        subscriptions = [SubscriptionFactory(plan=plan, start_date=date(2026, 1, 1)) for _ in range(200)]
        as_of = date(2026, 2, 1)
        barrier = threading.Barrier(2)
        summaries, errors = [], []

        def run():
            try:
                barrier.wait(timeout=30)
                summaries.append(bill(as_of))
            except BaseException as error:  # noqa: BLE001 - reported by the assert below
                errors.append(error)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert errors == []
        assert len(summaries) == 2
        assert sum(summary.periods_billed for summary in summaries) == 400
        assert BillingPeriod.objects.using(ALIAS).count() == 400
        for subscription in subscriptions:
            assert billed_periods(subscription) == [
                (date(2026, 1, 1), date(2026, 2, 1)),
                (date(2026, 2, 1), date(2026, 3, 1)),
            ]
        assert len(outbox_payloads(INVOICE_REQUESTED)) == 400
        assert {reload(subscription).version for subscription in subscriptions} == {3}


class TestQueryCount:
    """A bill run's queries grow with its batches, never with the subscriptions in a batch."""

    def queries_to_bill(self, subscriptions: int, as_of: date) -> int:
        plan = PlanFactory(code=f"plan-{subscriptions}")
        for _ in range(subscriptions):
            SubscriptionFactory(plan=plan, start_date=as_of)
        with CaptureQueriesContext(connections[ALIAS]) as queries:
            summary = bill(as_of)
        assert summary.periods_billed == subscriptions
        return len(queries)

    def test_same_queries_for_3_and_30_subscriptions(self):
        few = self.queries_to_bill(3, date(2026, 3, 1))
        Subscription.objects.using(ALIAS).update(status=SubscriptionStatus.CANCELED)

        many = self.queries_to_bill(30, date(2026, 4, 1))

        assert many == few

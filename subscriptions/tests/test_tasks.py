from datetime import date

import pytest
from celery.schedules import crontab
from django.conf import settings

from subscriptions.models import BillingPeriod
from subscriptions.tasks import scheduled_bill_run_task
from subscriptions.tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db(databases="__all__")


class TestScheduledBillRun:
    def test_task_bills_due_periods_once(self):
        SubscriptionFactory(start_date=date(2026, 1, 1))

        first = scheduled_bill_run_task.apply().get()
        second = scheduled_bill_run_task.apply().get()

        assert first["periods_billed"] >= 1
        assert second["periods_billed"] == 0
        assert BillingPeriod.objects.count() == first["periods_billed"]

    def test_beat_runs_it_daily(self):
        entry = settings.CELERY_BEAT_SCHEDULE["scheduled-bill-run"]

        assert entry["task"] == "subscriptions.scheduled_bill_run"
        assert entry["schedule"] == crontab(minute=5, hour=0)

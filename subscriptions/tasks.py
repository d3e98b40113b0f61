"""Celery tasks of the subscriptions module."""

from celery import shared_task
from django.utils import timezone

from subscriptions.services import bill_run_execute


@shared_task(name="subscriptions.scheduled_bill_run", ignore_result=True)
def scheduled_bill_run_task() -> dict:
    """Bill every tenant's due periods as of today (UTC); celery beat runs this daily.

    Running it twice, or beside a manual bill run, bills nothing twice: the
    bill run locks subscriptions and a unique constraint holds one row per
    billed period.
    """
    now = timezone.now()
    return bill_run_execute(as_of=now.date(), now=now).as_dict()

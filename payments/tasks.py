"""Celery tasks of the payments module."""

from dataclasses import asdict

from celery import shared_task
from django.utils import timezone

from payments.services import payments_retry_due


@shared_task(name="payments.retry_due_payments", ignore_result=True)
def retry_due_payments_task() -> dict[str, int]:
    """Charge every payment due now; celery beat runs this hourly."""
    return asdict(payments_retry_due(as_of=timezone.now()))

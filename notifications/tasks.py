"""Celery tasks of the notifications module."""

from celery import shared_task
from django.utils import timezone

from notifications.services import notifications_send_pending


@shared_task(name="notifications.send_pending", ignore_result=True)
def send_pending_notifications_task(older_than_seconds: int = 60) -> int:
    """Send notifications left pending for at least ``older_than_seconds``; return how many were sent."""
    return notifications_send_pending(now=timezone.now(), older_than_seconds=older_than_seconds)

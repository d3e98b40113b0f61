from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Notification, NotificationStatus
from notifications.tasks import send_pending_notifications_task
from notifications.tests.factories import NotificationFactory

pytestmark = pytest.mark.django_db(databases="__all__")


class TestSendPendingNotificationsTask:
    def test_registered_name(self):
        assert send_pending_notifications_task.name == "notifications.send_pending"

    def test_sends_old_pending(self, mailoutbox):
        old = NotificationFactory(created_at=timezone.now() - timedelta(minutes=5))
        young = NotificationFactory(created_at=timezone.now())

        result = send_pending_notifications_task.apply(kwargs={"older_than_seconds": 60})

        assert result.get() == 1
        assert len(mailoutbox) == 1
        notifications = Notification.objects.using("notifications")
        assert notifications.get(id=old.id).status == NotificationStatus.SENT
        assert notifications.get(id=young.id).status == NotificationStatus.PENDING

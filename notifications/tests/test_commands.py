from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from notifications.models import Notification, NotificationStatus
from notifications.tests.factories import NotificationFactory

pytestmark = pytest.mark.django_db(databases="__all__")


class TestSendPendingNotificationsCommand:
    def test_sends_old_pending(self, mailoutbox):
        old = NotificationFactory(created_at=timezone.now() - timedelta(minutes=5))
        NotificationFactory(created_at=timezone.now())
        output = StringIO()

        call_command("send_pending_notifications", stdout=output)

        assert output.getvalue() == "Sent 1 pending notification(s); now 1 pending, 1 sent, 0 failed\n"
        assert len(mailoutbox) == 1
        assert Notification.objects.using("notifications").get(id=old.id).status == NotificationStatus.SENT

    def test_older_than_option(self, mailoutbox):
        NotificationFactory(created_at=timezone.now() - timedelta(minutes=5))
        output = StringIO()

        call_command("send_pending_notifications", "--older-than", "600", stdout=output)

        assert output.getvalue() == "Sent 0 pending notification(s); now 1 pending, 0 sent, 0 failed\n"
        assert mailoutbox == []

    def test_negative_older_than_rejected(self, mailoutbox):
        NotificationFactory(created_at=timezone.now() - timedelta(minutes=5))

        with pytest.raises(CommandError) as raised:
            call_command("send_pending_notifications", "--older-than", "-5")

        assert str(raised.value) == "--older-than -5 must be 0 or more seconds"
        assert mailoutbox == []
        assert Notification.objects.using("notifications").get().attempts == 0

import pytest

from notifications.models import NotificationStatus
from notifications.tests.factories import OCCURRED_AT, NotificationFactory

pytestmark = pytest.mark.django_db(databases="__all__")
CHANGELIST = "/admin/notifications/notification/"


class TestNotificationAdmin:
    def test_list_filters_by_status(self, admin_client):
        NotificationFactory(recipient="failed@example.com", status=NotificationStatus.FAILED, error="x")
        NotificationFactory(recipient="sent@example.com", status=NotificationStatus.SENT, sent_at=OCCURRED_AT)

        response = admin_client.get(CHANGELIST, {"status__exact": "failed"})

        assert response.status_code == 200
        assert b"failed@example.com" in response.content
        assert b"sent@example.com" not in response.content

    def test_list_filters_by_template_and_tenant(self, admin_client):
        NotificationFactory(recipient="a@example.com", template="invoice_finalized", tenant_id="tenant-a")
        NotificationFactory(recipient="b@example.com", template="invoice_finalized", tenant_id="tenant-b")
        NotificationFactory(recipient="c@example.com", template="payment_failed", tenant_id="tenant-a")

        response = admin_client.get(CHANGELIST, {"template__exact": "invoice_finalized", "tenant_id": "tenant-a"})

        assert response.status_code == 200
        assert b"a@example.com" in response.content
        assert b"b@example.com" not in response.content
        assert b"c@example.com" not in response.content

    def test_search_by_recipient(self, admin_client):
        NotificationFactory(recipient="ada@example.com")
        NotificationFactory(recipient="grace@example.com")

        response = admin_client.get(CHANGELIST, {"q": "ada@"})

        assert b"ada@example.com" in response.content
        assert b"grace@example.com" not in response.content

    def test_read_only(self, admin_client):
        notification = NotificationFactory()

        add = admin_client.get(f"{CHANGELIST}add/")
        detail = admin_client.get(f"{CHANGELIST}{notification.id}/change/")
        delete = admin_client.get(f"{CHANGELIST}{notification.id}/delete/")

        assert add.status_code == 403
        assert detail.status_code == 200
        assert b'name="_save"' not in detail.content
        assert delete.status_code == 403

    def test_change_page_renders(self, admin_client):
        notification = NotificationFactory(invoice_number="INV-2026-0042", subject="Receipt for INV-2026-0042")

        response = admin_client.get(f"{CHANGELIST}{notification.id}/change/")

        assert response.status_code == 200
        assert b"Receipt for INV-2026-0042" in response.content
        assert b'name="status"' not in response.content

    def test_search_by_invoice_number(self, admin_client):
        NotificationFactory(recipient="ada@example.com", invoice_number="INV-2026-0042")
        NotificationFactory(recipient="grace@example.com", invoice_number="INV-2026-0043")

        response = admin_client.get(CHANGELIST, {"q": "INV-2026-0042"})

        assert b"ada@example.com" in response.content
        assert b"grace@example.com" not in response.content

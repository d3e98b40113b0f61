"""The admin pages of every module's outbox, inbox and dead letters (eventbus.admin)."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from ar.models import DeadLetter as ArDeadLetter
from ar.models import Invoice
from ar.models import OutboxEvent as ArOutboxEvent
from ar.tests.factories import CustomerFactory, InvoiceRequestedFactory
from ar.tests.support import deliver_envelope, envelope_for
from eventbus.backends import reset_bus
from eventbus.consumer import deliver
from eventbus.models import DeadLetterStatus, OutboxState
from eventbus.registry import get_module
from eventbus.relay import relay_outbox
from subscriptions.events import INVOICE_REQUESTED

pytestmark = pytest.mark.django_db(databases="__all__")

MODULES = ["subscriptions", "ar", "payments", "notifications"]
TABLES = {"outbox": "outboxevent", "inbox": "processedevent", "dead_letters": "deadletter"}


def url(module: str, table: str, view: str, *args) -> str:
    return reverse(f"admin:{module}_{TABLES[table]}_{view}", args=args)


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


def run_action(client, module: str, table: str, action: str, rows):
    """Post ``action`` as a confirmation page does, so an action that asks first runs at once."""
    return client.post(
        url(module, table, "changelist"),
        {"action": action, "post": "yes", "_selected_action": [str(row.id) for row in rows]},
        follow=True,
    )


def outbox_row(module: str, **changes):
    """Insert one outbox row in ``module``, pending and created a minute ago unless ``changes`` say otherwise."""
    bus_module = get_module(module)
    event_id = uuid.uuid4()
    values = {
        "event_id": event_id,
        "event_type": f"{module}.thing.happened",
        "subject": f"{module}.events.{module}.thing.happened",
        "aggregate_type": "thing",
        "aggregate_id": f"thing-{uuid.uuid4().hex[:8]}",
        "aggregate_version": 1,
        "tenant_id": "acme",
        "correlation_id": uuid.uuid4(),
        "body": f'{{"event_id": "{event_id}", "payload": {{"value": 1}}}}',
        "created_at": timezone.now() - timedelta(minutes=1),
        **changes,
    }
    return bus_module.outbox.objects.using(bus_module.alias).create(**values)


def inbox_row(module: str):
    bus_module = get_module(module)
    return bus_module.inbox.objects.using(bus_module.alias).create(
        event_id=uuid.uuid4(), consumer=module, event_type="ar.invoice.paid", aggregate_type="invoice",
        aggregate_id=str(uuid.uuid4()), aggregate_version=3, tenant_id="acme", processed_at=timezone.now(),
    )


def malformed_dead_letter(module: str, body: bytes = b"not json {"):
    """Deliver a body that is no envelope to ``module``, which dead-letters it at once."""
    bus_module = get_module(module)
    deliver(module=bus_module, subject=f"{module}.events.broken", body=body, delivery=1)
    return bus_module.dead_letters.objects.using(bus_module.alias).get(event_id__isnull=True)


def failed_invoice_request():
    """Dead-letter an invoice request in ar whose customer does not exist yet.

    Return the dead letter and the customer id.
    """
    customer_id = str(uuid.uuid4())
    envelope = envelope_for(INVOICE_REQUESTED, InvoiceRequestedFactory(customer_id=customer_id))
    deliver_envelope(envelope, max_deliver=1)
    return ArDeadLetter.objects.using("ar").get(event_id=envelope.event_id), customer_id


@pytest.fixture
def inprocess_bus(settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}
    reset_bus()
    yield
    reset_bus()


class TestEventTablePages:
    @pytest.mark.parametrize("module", MODULES)
    def test_every_page_renders(self, admin_client, module):
        rows = {
            "outbox": outbox_row(module),
            "inbox": inbox_row(module),
            "dead_letters": malformed_dead_letter(module),
        }

        for table, row in rows.items():
            listed = admin_client.get(url(module, table, "changelist"))
            shown = admin_client.get(url(module, table, "change", row.id))

            assert listed.status_code == 200, table
            assert shown.status_code == 200, table
            assert shown.context["has_change_permission"] is False, table

    @pytest.mark.parametrize("table", list(TABLES))
    def test_rows_are_read_only(self, admin_client, table):
        row = {"outbox": outbox_row, "inbox": inbox_row, "dead_letters": malformed_dead_letter}[table]("ar")
        tenant_id = row.tenant_id

        added = admin_client.get(url("ar", table, "add"))
        changed = admin_client.post(url("ar", table, "change", row.id), {"tenant_id": "other"})
        deleted = admin_client.post(url("ar", table, "delete", row.id), {"post": "yes"})

        assert added.status_code == 403
        assert changed.status_code == 403
        assert deleted.status_code == 403
        row.refresh_from_db()
        assert row.tenant_id == tenant_id

    def test_inbox_search_by_event_id(self, admin_client):
        wanted = inbox_row("ar")
        other = inbox_row("ar")

        response = admin_client.get(url("ar", "inbox", "changelist"), {"q": str(wanted.event_id)})

        assert str(wanted.aggregate_id) in response.text
        assert str(other.aggregate_id) not in response.text


class TestOutboxAdmin:
    @pytest.mark.parametrize(
        ("state", "shown"),
        [("pending", {"pending", "failing"}), ("published", {"published"}), ("failing", {"failing"})],
    )
    def test_filter_by_publish_state(self, admin_client, state, shown):
        rows = {
            "pending": outbox_row("ar", aggregate_id="agg-pending"),
            "failing": outbox_row("ar", aggregate_id="agg-failing", last_error="nats: timeout", publish_attempts=2),
            "published": outbox_row(
                "ar", aggregate_id="agg-published", state=OutboxState.PUBLISHED, published_at=timezone.now()
            ),
        }

        response = admin_client.get(url("ar", "outbox", "changelist"), {"publish_state": state})

        assert response.status_code == 200
        for name, row in rows.items():
            assert (f"{row.aggregate_id} v1" in response.text) is (name in shown), name

    def test_columns_show_attempts_error_and_age(self, admin_client):
        outbox_row(
            "ar", aggregate_id="agg-7", aggregate_version=4, last_error="nats: timeout\nTraceback ...",
            publish_attempts=3, created_at=timezone.now() - timedelta(hours=2),
        )

        response = admin_client.get(url("ar", "outbox", "changelist"))

        row = response.context["cl"].result_list[0]
        admin_class = response.context["cl"].model_admin
        assert admin_class.aggregate(row) == "thing agg-7 v4"
        assert admin_class.short_last_error(row) == "nats: timeout"
        assert admin_class.age(row) == "2\xa0hours"
        assert "<td class=\"field-publish_attempts\">3</td>" in response.text

    def test_changelist_shows_oldest_pending_age(self, admin_client):
        outbox_row("ar", created_at=timezone.now() - timedelta(minutes=5, seconds=10))
        outbox_row("ar", created_at=timezone.now() - timedelta(minutes=1), last_error="nats: timeout")
        outbox_row(
            "ar", created_at=timezone.now() - timedelta(days=2), state=OutboxState.PUBLISHED,
            published_at=timezone.now(),
        )

        response = admin_client.get(url("ar", "outbox", "changelist"))

        assert "<h2>2 pending, 1 failing. The oldest pending event is 5\xa0minutes old.</h2>" in response.text

    def test_changelist_without_pending_says_so(self, admin_client):
        outbox_row("ar", state=OutboxState.PUBLISHED, published_at=timezone.now())

        response = admin_client.get(url("ar", "outbox", "changelist"))

        assert "<h2>No pending events.</h2>" in response.text

    def test_change_page_shows_envelope_as_text(self, admin_client):
        row = outbox_row("ar")

        response = admin_client.get(url("ar", "outbox", "change", row.id))

        assert f"&quot;event_id&quot;: &quot;{row.event_id}&quot;" in response.text
        assert 'name="body"' not in response.text
        assert 'name="state"' not in response.text

    def test_retry_now_makes_row_due(self, admin_client, inprocess_bus, settings):
        # The action itself is under test, so the web process must not relay
        # the outboxes after the POST as it does on the embedded setup.
        settings.API_DRAIN_OUTBOXES_AFTER_WRITE = False
        customer = CustomerFactory()
        deliver_envelope(envelope_for(INVOICE_REQUESTED, InvoiceRequestedFactory(customer_id=str(customer.id))))
        row = ArOutboxEvent.objects.using("ar").order_by("id").first()
        later = timezone.now() + timedelta(hours=1)
        ArOutboxEvent.objects.using("ar").filter(id=row.id).update(
            publish_attempts=4, last_error="nats: timeout", next_attempt_at=later
        )
        before_retry = relay_outbox(module="ar")

        response = run_action(admin_client, "ar", "outbox", "retry_now", [row])

        assert before_retry.published == 0
        assert messages_of(response) == [
            ("success", f"Outbox row {row.id} (ar.invoice.finalized) will be published on the next relay pass."),
        ]
        row.refresh_from_db()
        assert row.next_attempt_at is None
        assert (row.state, row.publish_attempts, row.last_error) == (OutboxState.PENDING, 4, "nats: timeout")
        assert relay_outbox(module="ar").published >= 1
        row.refresh_from_db()
        assert row.state == OutboxState.PUBLISHED

    def test_retry_now_rejects_published_row(self, admin_client):
        published_at = timezone.now()
        published = outbox_row("ar", state=OutboxState.PUBLISHED, published_at=published_at, publish_attempts=1)
        pending = outbox_row("ar", next_attempt_at=timezone.now() + timedelta(minutes=5), last_error="nats: timeout")

        response = run_action(admin_client, "ar", "outbox", "retry_now", [published, pending])

        assert messages_of(response) == [
            (
                "error",
                f"outbox row {published.id} (ar.thing.happened) in module 'ar' is already published; "
                "only a pending row can be retried",
            ),
            ("success", f"Outbox row {pending.id} (ar.thing.happened) will be published on the next relay pass."),
        ]
        published.refresh_from_db()
        assert (published.state, published.published_at, published.publish_attempts) == (
            OutboxState.PUBLISHED, published_at, 1,
        )
        pending.refresh_from_db()
        assert pending.next_attempt_at is None


    def test_viewer_cannot_retry(self, client):
        viewer = get_user_model().objects.create_user("viewer", "viewer@example.com", "secret-password", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_outboxevent", content_type__app_label="ar"))
        client.force_login(viewer)
        later = timezone.now() + timedelta(minutes=5)
        row = outbox_row("ar", next_attempt_at=later, last_error="nats: timeout")

        listed = client.get(url("ar", "outbox", "changelist"))
        response = run_action(client, "ar", "outbox", "retry_now", [row])

        assert listed.status_code == 200
        assert "retry_now" not in listed.text
        # Without an action to offer, the changelist ignores the posted one.
        assert response.status_code == 200
        assert messages_of(response) == []
        row.refresh_from_db()
        assert row.next_attempt_at == later


class TestDeadLetterAdmin:
    def test_change_page_shows_body_as_text(self, admin_client):
        dead, customer_id = failed_invoice_request()

        response = admin_client.get(url("ar", "dead_letters", "change", dead.id))

        assert response.status_code == 200
        assert f"&quot;customer_id&quot;: &quot;{customer_id}&quot;" in response.text
        assert f"ar.errors.CustomerNotFound: customer &#x27;{customer_id}&#x27; not found" in response.text
        assert 'name="body"' not in response.text

    def test_malformed_body_shown_unchanged(self, admin_client):
        dead = malformed_dead_letter("ar", body=b"not json <b>")

        response = admin_client.get(url("ar", "dead_letters", "change", dead.id))

        assert "<pre>not json &lt;b&gt;</pre>" in response.text

    def test_filter_by_status(self, admin_client):
        dead, _ = failed_invoice_request()
        ArDeadLetter.objects.using("ar").filter(id=dead.id).update(status=DeadLetterStatus.DISCARDED)
        malformed = malformed_dead_letter("ar")

        response = admin_client.get(url("ar", "dead_letters", "changelist"), {"status__exact": "dead"})

        assert [row.id for row in response.context["cl"].result_list] == [malformed.id]

    def test_replay_applies_message(self, admin_client):
        dead, customer_id = failed_invoice_request()
        CustomerFactory(id=customer_id)

        response = run_action(admin_client, "ar", "dead_letters", "replay", [dead])

        assert messages_of(response) == [
            ("success", f"Dead letter {dead.id} (subscriptions.invoice.requested) was replayed and applied."),
        ]
        dead.refresh_from_db()
        assert dead.status == DeadLetterStatus.REPLAYED
        assert Invoice.objects.using("ar").filter(customer_id=customer_id).count() == 1

    def test_replay_that_fails_again_stays_dead(self, admin_client):
        dead, customer_id = failed_invoice_request()

        response = run_action(admin_client, "ar", "dead_letters", "replay", [dead])

        dead.refresh_from_db()
        last_line = dead.error.strip().splitlines()[-1]
        assert last_line.startswith(f"ar.errors.CustomerNotFound: customer '{customer_id}' not found")
        assert messages_of(response) == [
            ("error", f"Dead letter {dead.id} failed again and stays dead: {last_line}"),
        ]
        assert dead.status == DeadLetterStatus.DEAD
        assert not Invoice.objects.using("ar").exists()

    def test_discard_marks_discarded(self, admin_client):
        dead = malformed_dead_letter("ar")

        response = run_action(admin_client, "ar", "dead_letters", "discard", [dead])

        assert messages_of(response) == [("success", f"Dead letter {dead.id} ({dead.message_key}) was discarded.")]
        dead.refresh_from_db()
        assert dead.status == DeadLetterStatus.DISCARDED
        assert dead.resolved_at is not None

    def test_discard_asks_first(self, admin_client):
        dead = malformed_dead_letter("ar")

        response = admin_client.post(
            url("ar", "dead_letters", "changelist"), {"action": "discard", "_selected_action": [str(dead.id)]}
        )

        assert response.status_code == 200
        assert "Discard the selected dead letters? Their messages are not applied." in response.text
        dead.refresh_from_db()
        assert (dead.status, dead.resolved_at) == (DeadLetterStatus.DEAD, None)

    @pytest.mark.parametrize("action", ["replay", "discard"])
    def test_resolved_row_is_rejected(self, admin_client, action):
        dead, customer_id = failed_invoice_request()
        resolved_at = timezone.now() - timedelta(days=1)
        ArDeadLetter.objects.using("ar").filter(id=dead.id).update(
            status=DeadLetterStatus.DISCARDED, resolved_at=resolved_at
        )
        CustomerFactory(id=customer_id)

        response = run_action(admin_client, "ar", "dead_letters", action, [dead])

        assert messages_of(response) == [
            ("error", f"dead letter {dead.id} in module 'ar' is already discarded"),
        ]
        dead.refresh_from_db()
        assert (dead.status, dead.resolved_at) == (DeadLetterStatus.DISCARDED, resolved_at)
        assert not Invoice.objects.using("ar").exists()


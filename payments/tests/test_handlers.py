import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from eventbus.consumer import Disposition, Incoming, deliver_group
from eventbus.registry import get_module
from payments.models import DeadLetter, Payment, ProcessedEvent
from payments.tests.factories import (
    REQUESTED_AT,
    CollectionRequestFactory,
    PaymentMethodFactory,
    collection_envelope,
    deliver_to_payments,
)
from payments.tests.support import attempt_count, outbox_events, simulated_charge_count

# Committed transactions, so the handler's on_commit charge runs as in production.
pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def request_with_token(token: str = "tok_success"):
    request = CollectionRequestFactory()
    PaymentMethodFactory(customer_id=request.customer_id, token=token)
    return request


class TestCollectPayment:
    def test_request_creates_and_charges_payment(self, payments_settings):
        request = request_with_token()
        envelope = collection_envelope(request)

        result = deliver_to_payments(envelope)

        assert result.disposition == Disposition.ACK
        payment = Payment.objects.using("payments").get()
        assert payment.invoice_id == request.invoice_id
        assert payment.invoice_number == "INV-2026-0042"
        assert payment.customer_id == request.customer_id
        assert payment.amount_minor == 2500
        assert payment.currency == "USD"
        assert payment.idempotency_key == request.idempotency_key
        assert payment.tenant_id == "tenant-a"
        assert payment.correlation_id == envelope.correlation_id
        assert payment.request_event_id == envelope.event_id
        assert payment.created_at == REQUESTED_AT
        assert payment.status == "succeeded"
        assert ProcessedEvent.objects.using("payments").filter(event_id=envelope.event_id).count() == 1
        (event,) = outbox_events()
        assert event["event_type"] == "payments.payment.succeeded"
        assert event["correlation_id"] == str(envelope.correlation_id)
        assert event["causation_id"] == str(envelope.event_id)

    def test_charge_runs_after_commit(self, payments_settings, transaction_probe):
        deliver_to_payments(collection_envelope(request_with_token()))

        assert transaction_probe == [False]

    @pytest.mark.parametrize(
        ("token", "status"),
        [
            ("tok_success", "succeeded"),
            ("tok_slow", "succeeded"),
            ("tok_decline", "failed"),
            ("tok_insufficient_funds", "retry_scheduled"),
            ("tok_processing_error", "retry_scheduled"),
            ("tok_insufficient_then_success", "retry_scheduled"),
        ],
    )
    def test_token_decides_status(self, payments_settings, token, status):
        deliver_to_payments(collection_envelope(request_with_token(token)))

        assert Payment.objects.using("payments").get().status == status

    def test_redelivery_never_charges_twice(self, payments_settings):
        envelope = collection_envelope(request_with_token())
        deliver_to_payments(envelope, delivery=1)

        again = deliver_to_payments(envelope, delivery=2)

        assert again.duplicate is True
        assert Payment.objects.using("payments").count() == 1
        assert attempt_count() == 1
        assert simulated_charge_count() == 1
        assert len(outbox_events()) == 1

    def test_repeated_request_never_charges_twice(self, payments_settings):
        request = request_with_token()
        deliver_to_payments(collection_envelope(request))

        # AR publishing the request again is a new event with the same invoice.
        repeat = deliver_to_payments(collection_envelope(request))

        assert repeat.disposition == Disposition.ACK
        assert repeat.duplicate is False
        assert ProcessedEvent.objects.using("payments").count() == 2
        assert Payment.objects.using("payments").count() == 1
        assert attempt_count() == 1
        assert simulated_charge_count() == 1

    def test_request_reusing_key_for_other_invoice_ignored(self, payments_settings):
        request = request_with_token()
        deliver_to_payments(collection_envelope(request))
        other = CollectionRequestFactory(customer_id=request.customer_id, idempotency_key=request.idempotency_key)

        deliver_to_payments(collection_envelope(other))

        assert list(Payment.objects.using("payments").values_list("invoice_id", flat=True)) == [request.invoice_id]
        assert simulated_charge_count() == 1

    def test_invalid_request_retried_then_dead_lettered(self, payments_settings):
        request = CollectionRequestFactory(amount_minor=0)
        envelope = collection_envelope(request)

        first = deliver_to_payments(envelope, delivery=1)
        last = deliver_to_payments(envelope, delivery=5)

        assert first.disposition == Disposition.RETRY
        assert last.disposition == Disposition.TERMINATE
        dead = DeadLetter.objects.using("payments").get()
        assert dead.event_id == envelope.event_id
        assert (
            "InvalidCollectionRequest: amount_minor 0 is invalid; pass a whole number of minor "
            "units of at least 1"
        ) in dead.error
        assert Payment.objects.using("payments").count() == 0
        assert ProcessedEvent.objects.using("payments").count() == 0

    def test_bad_currency_writes_nothing(self, payments_settings):
        envelope = collection_envelope(CollectionRequestFactory(currency="usd"))

        result = deliver_to_payments(envelope)

        assert result.disposition == Disposition.RETRY
        assert Payment.objects.using("payments").count() == 0
        assert ProcessedEvent.objects.using("payments").count() == 0

    def test_charge_error_leaves_payment_pending(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.gateways.missing.Gateway"
        envelope = collection_envelope(request_with_token())

        result = deliver_to_payments(envelope)

        # The request is applied; the retry runner charges the payment later.
        assert result.disposition == Disposition.ACK
        assert Payment.objects.using("payments").get().status == "pending"
        assert attempt_count() == 0


class TestGroupOfRequests:
    def deliver_group(self, envelopes):
        messages = [
            Incoming(subject=envelope.subject, body=envelope.to_json(), delivery=1, envelope=envelope)
            for envelope in envelopes
        ]
        return deliver_group(module=get_module("payments"), messages=messages)

    def test_one_insert_and_every_payment_charged(self, payments_settings):
        envelopes = [collection_envelope(request_with_token()) for _ in range(3)]

        with CaptureQueriesContext(connections["payments"]) as queries:
            results = self.deliver_group(envelopes)

        assert [result.disposition for result in results] == [Disposition.ACK] * 3
        inserts = [query for query in queries.captured_queries if query["sql"].startswith('INSERT INTO "payments_payment"')]
        assert len(inserts) == 1
        assert sorted(Payment.objects.using("payments").values_list("status", flat=True)) == ["succeeded"] * 3
        assert simulated_charge_count() == 3

    def test_repeated_request_in_group_charged_once(self, payments_settings):
        request = request_with_token()
        repeat = collection_envelope(request)

        results = self.deliver_group([collection_envelope(request), repeat])

        assert [result.disposition for result in results] == [Disposition.ACK] * 2
        assert Payment.objects.using("payments").count() == 1
        assert simulated_charge_count() == 1

    def test_invalid_request_retried_alone(self, payments_settings):
        good = collection_envelope(request_with_token())
        bad = collection_envelope(CollectionRequestFactory(currency="usd"))

        results = self.deliver_group([good, bad])

        assert [result.disposition for result in results] == [Disposition.ACK, Disposition.RETRY]
        assert Payment.objects.using("payments").get().request_event_id == good.event_id


class TestQueryCount:
    def queries_to_collect(self, request) -> int:
        with CaptureQueriesContext(connections["payments"]) as queries:
            result = deliver_to_payments(collection_envelope(request))
        assert result.disposition == Disposition.ACK
        return len(queries)

    def test_history_adds_no_queries(self, payments_settings):
        newcomer = request_with_token()
        regular = request_with_token()
        for _ in range(10):
            deliver_to_payments(collection_envelope(CollectionRequestFactory(customer_id=regular.customer_id)))

        next_request = CollectionRequestFactory(customer_id=regular.customer_id)
        assert self.queries_to_collect(next_request) == self.queries_to_collect(newcomer)

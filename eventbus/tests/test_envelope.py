import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from eventbus.envelope import Envelope, format_timestamp, producer_of, subject_for
from eventbus.errors import InvalidEnvelope

EVENT_ID = "6f1d2c4e-9a8b-4c7d-8e6f-5a4b3c2d1e0f"
CORRELATION_ID = "0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"


def document(**changes) -> dict:
    base = {
        "event_id": EVENT_ID,
        "event_type": "ar.invoice.paid",
        "schema_version": 1,
        "aggregate_type": "invoice",
        "aggregate_id": "inv-1",
        "aggregate_version": 3,
        "tenant_id": "tenant-a",
        "correlation_id": CORRELATION_ID,
        "causation_id": None,
        "occurred_at": "2026-01-31T23:59:59Z",
        "payload": {"invoice_id": "inv-1"},
    }
    base.update(changes)
    return base


def reason_for(value) -> str:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    with pytest.raises(InvalidEnvelope) as raised:
        Envelope.from_json(data)
    assert raised.value.code == "invalid_envelope"
    return raised.value.reason


class TestEnvelopeParsing:
    def test_valid_document_parses(self):
        envelope = Envelope.from_json(json.dumps(document()).encode())

        assert envelope.event_id == uuid.UUID(EVENT_ID)
        assert envelope.aggregate_version == 3
        assert envelope.causation_id is None
        assert envelope.occurred_at == datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
        assert envelope.producer == "ar"
        assert envelope.subject == "ar.events.ar.invoice.paid"

    def test_round_trip_keeps_every_field(self):
        envelope = Envelope.from_json(json.dumps(document(causation_id=EVENT_ID)).encode())

        assert Envelope.from_json(envelope.to_json()) == envelope
        assert json.loads(envelope.to_json())["occurred_at"] == "2026-01-31T23:59:59Z"

    def test_offset_timestamp_is_converted_to_utc(self):
        envelope = Envelope.from_dict(document(occurred_at="2026-02-01T01:59:59+02:00"))

        assert envelope.occurred_at == datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
        assert envelope.occurred_at.utcoffset() == timedelta(0)

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (b"{not json", "message is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            ([1, 2], "envelope must be a JSON object, not list"),
            (
                {key: value for key, value in document().items() if key not in ("tenant_id", "payload")},
                "envelope is missing field(s): tenant_id, payload",
            ),
            (document(extra=1, another=2), "envelope has unknown field(s): another, extra"),
            (
                document(event_type="Invoice Paid"),
                "event_type 'Invoice Paid' is invalid; expected dotted lower-case words such as 'ar.invoice.paid'",
            ),
            (
                document(event_type="ar.paid"),
                "event_type 'ar.paid' is invalid; expected dotted lower-case words such as 'ar.invoice.paid'",
            ),
            (
                document(event_type=7),
                "event_type 7 is invalid; expected dotted lower-case words such as 'ar.invoice.paid'",
            ),
            (document(event_id=5), "event_id must be a UUID string, got 5"),
            (document(event_id="not-a-uuid"), "event_id 'not-a-uuid' is not a valid UUID"),
            (document(correlation_id=None), "correlation_id must be a UUID string, got None"),
            (document(causation_id="x"), "causation_id 'x' is not a valid UUID"),
            (document(schema_version=0), "schema_version must be a whole number of at least 1, got 0"),
            (document(schema_version=True), "schema_version must be a whole number of at least 1, got True"),
            (document(aggregate_version="3"), "aggregate_version must be a whole number of at least 1, got '3'"),
            (document(aggregate_version=1.5), "aggregate_version must be a whole number of at least 1, got 1.5"),
            (document(aggregate_type=""), "aggregate_type must be a non-empty string, got ''"),
            (document(tenant_id="   "), "tenant_id must be a non-empty string, got '   '"),
            (document(aggregate_id=12), "aggregate_id must be a non-empty string, got 12"),
            (document(aggregate_id="x" * 101), "aggregate_id is 101 characters long; the maximum is 100"),
            (document(occurred_at=1700000000), "occurred_at must be an RFC 3339 string, got 1700000000"),
            (document(occurred_at="yesterday"), "occurred_at 'yesterday' is not an RFC 3339 timestamp"),
            (
                document(occurred_at="2026-01-31T23:59:59"),
                "occurred_at '2026-01-31T23:59:59' has no UTC offset; append 'Z'",
            ),
            (document(payload=[1]), "payload must be a JSON object, got list"),
            (document(payload=None), "payload must be a JSON object, got NoneType"),
        ],
    )
    def test_invalid_envelope_names_the_problem(self, value, reason):
        assert reason_for(value) == reason

    def test_invalid_utf8_is_not_json(self):
        assert reason_for(b"\xff\xfe\xfa").startswith("message is not JSON: ")

    def test_aggregate_id_of_100_characters_is_accepted(self):
        assert Envelope.from_dict(document(aggregate_id="x" * 100)).aggregate_id == "x" * 100


class TestEnvelopeHelpers:
    def test_producer_and_subject_come_from_the_first_part(self):
        assert producer_of("payments.payment.failed") == "payments"
        assert subject_for("payments.payment.failed") == "payments.events.payments.payment.failed"

    def test_format_timestamp_writes_utc_with_z(self):
        moment = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))

        assert format_timestamp(moment) == "2026-03-01T17:00:00Z"

    def test_format_timestamp_rejects_naive_datetime(self):
        with pytest.raises(ValueError) as raised:
            format_timestamp(datetime(2026, 3, 1, 12, 0))

        assert str(raised.value) == (
            "timestamp datetime.datetime(2026, 3, 1, 12, 0) has no time zone; pass an aware UTC datetime"
        )

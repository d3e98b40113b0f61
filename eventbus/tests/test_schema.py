from dataclasses import dataclass, field

import pytest

from eventbus.errors import InvalidPayload
from eventbus.schema import EventType


@dataclass(frozen=True)
class Charged:
    invoice_id: str
    amount_minor: int
    retryable: bool
    rate: float
    lines: list[dict] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass(frozen=True)
class Other:
    invoice_id: str


CHARGED = EventType("payments.payment.charged", Charged)
VALID = {"invoice_id": "inv-1", "amount_minor": 1250, "retryable": False, "rate": 0.5}


def error_for(document) -> str:
    with pytest.raises(InvalidPayload) as raised:
        CHARGED.load(document)
    assert raised.value.code == "invalid_payload"
    return str(raised.value)


class TestEventTypeLoad:
    def test_valid_payload_loads_with_defaults(self):
        payload = CHARGED.load(VALID)

        assert payload == Charged("inv-1", 1250, False, 0.5)
        assert payload.lines == []
        assert payload.note is None

    def test_optional_fields_accept_values_and_null(self):
        payload = CHARGED.load({**VALID, "note": None, "lines": [{"amount_minor": 5}], "tags": ["a", "b"]})

        assert payload.note is None
        assert payload.lines == [{"amount_minor": 5}]
        assert payload.tags == ["a", "b"]
        assert CHARGED.load({**VALID, "note": "late"}).note == "late"

    def test_float_field_accepts_whole_number(self):
        assert CHARGED.load({**VALID, "rate": 2}).rate == 2

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ([VALID], "payments.payment.charged payload must be an object, got list"),
            (
                {key: value for key, value in VALID.items() if key != "amount_minor"},
                "payments.payment.charged payload is missing field 'amount_minor'",
            ),
            (
                {**VALID, "colour": "red", "amount": 1},
                "payments.payment.charged payload has unknown field(s): amount, colour",
            ),
            (
                {**VALID, "amount_minor": "1250"},
                "payments.payment.charged payload field 'amount_minor' must be int, got '1250'",
            ),
            (
                {**VALID, "amount_minor": 12.5},
                "payments.payment.charged payload field 'amount_minor' must be int, got 12.5",
            ),
            (
                {**VALID, "amount_minor": True},
                "payments.payment.charged payload field 'amount_minor' must be int, got True",
            ),
            (
                {**VALID, "rate": False},
                "payments.payment.charged payload field 'rate' must be float, got False",
            ),
            (
                {**VALID, "retryable": 0},
                "payments.payment.charged payload field 'retryable' must be bool, got 0",
            ),
            (
                {**VALID, "invoice_id": None},
                "payments.payment.charged payload field 'invoice_id' must be str, got None",
            ),
            (
                {**VALID, "note": 5},
                "payments.payment.charged payload field 'note' must be str or null, got 5",
            ),
            (
                {**VALID, "tags": ["a", 1]},
                "payments.payment.charged payload field 'tags' must be a list of str, got ['a', 1]",
            ),
            (
                {**VALID, "lines": {"amount_minor": 5}},
                "payments.payment.charged payload field 'lines' must be a list of dict, got {'amount_minor': 5}",
            ),
            (
                {**VALID, "lines": [1]},
                "payments.payment.charged payload field 'lines' must be a list of dict, got [1]",
            ),
        ],
        ids=[
            "not-object", "missing", "unknown", "string-as-int", "float-as-int", "bool-as-int",
            "bool-as-float", "int-as-bool", "null-required", "wrong-optional", "list-item",
            "dict-as-list", "list-of-non-dicts",
        ],
    )
    def test_invalid_payload_names_the_field(self, document, message):
        assert error_for(document) == message


class TestEventTypeDump:
    def test_dump_of_dataclass_returns_dict(self):
        assert CHARGED.dump(Charged("inv-1", 1250, True, 1.0, note="x")) == {
            "invoice_id": "inv-1",
            "amount_minor": 1250,
            "retryable": True,
            "rate": 1.0,
            "lines": [],
            "tags": [],
            "note": "x",
        }

    def test_dump_of_dict_validates_it(self):
        assert CHARGED.dump(VALID) == VALID
        with pytest.raises(InvalidPayload) as raised:
            CHARGED.dump({**VALID, "amount_minor": None})

        assert str(raised.value) == "payments.payment.charged payload field 'amount_minor' must be int, got None"

    def test_dump_rejects_another_payload_class(self):
        with pytest.raises(InvalidPayload) as raised:
            CHARGED.dump(Other("inv-1"))

        assert str(raised.value) == "payments.payment.charged expects a Charged payload, got Other"

    def test_dataclass_inside_list_rejected(self):
        with pytest.raises(InvalidPayload) as raised:
            CHARGED.dump(Charged("inv-1", 1250, True, 1.0, lines=[Other("inv-1")]))

        assert "field 'lines' must be a list of dict" in str(raised.value)

    def test_missing_and_unknown_fields_named(self):
        with pytest.raises(InvalidPayload) as missing:
            CHARGED.dump({key: value for key, value in VALID.items() if key != "rate"})
        with pytest.raises(InvalidPayload) as unknown:
            CHARGED.dump({**VALID, "colour": "red"})

        assert str(missing.value) == "payments.payment.charged payload is missing field 'rate'"
        assert str(unknown.value) == "payments.payment.charged payload has unknown field(s): colour"


class TestEventTypeDeclaration:
    def test_name_must_be_dotted_lower_case(self):
        with pytest.raises(ValueError) as raised:
            EventType("PaymentCharged", Charged)

        assert str(raised.value) == "event type name 'PaymentCharged' must be dotted lower-case words"

    def test_payload_must_be_dataclass(self):
        with pytest.raises(TypeError) as raised:
            EventType("payments.payment.charged", dict)

        assert str(raised.value) == "payload of payments.payment.charged must be a dataclass, got <class 'dict'>"

    def test_producer_is_first_part(self):
        assert CHARGED.producer == "payments"
        assert CHARGED.schema_version == 1

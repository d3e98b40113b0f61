from datetime import date

import pytest

from billing.operations.imports.mapping import default_mapping, mapping_bind, mapping_parse
from billing.operations.imports.reader import csv_table_read
from billing.operations.imports.rows import (
    ImportRow,
    PlanTerms,
    RowRejection,
    first_period_start_on_or_after,
    rows_validate,
)
from tests.operations.csv_files import (
    DEFAULT_HEADER,
    TELCO_HEADER,
    TELCO_MAPPING,
    TELCO_ROWS,
    default_row,
    write_csv,
)

AS_OF = date(2026, 3, 31)


def validate(tmp_path, header, rows, mapping=None):
    table = csv_table_read(write_csv(tmp_path, header, rows))
    bound = mapping_bind(mapping or default_mapping(), table.header)
    return rows_validate(records=table.records, mapping=bound, as_of=AS_OF)


def reasons(result) -> dict[int, str]:
    return {rejection.line_number: rejection.reason for rejection in result.rejections}


class TestDefaultLayout:
    def test_valid_row(self, tmp_path):
        result = validate(tmp_path, DEFAULT_HEADER, [default_row()])

        assert result.rejections == []
        assert result.rows == [
            ImportRow(
                line_number=2,
                external_id="C-1",
                name="Ada Lovelace",
                email="ada@example.com",
                currency="USD",
                collection_method="charge_automatically",
                payment_terms_days=0,
                plan=PlanTerms("basic", "Basic", 2985, "USD", "month", 1),
                amount_minor=2985,
                quantity=1,
                start_date=date(2026, 1, 15),
                payment_token="tok_success",
                payment_kind="card",
            )
        ]
        assert result.rows[0].price_override_minor is None

    def test_blank_optional_cells_take_defaults(self, tmp_path):
        row = default_row(
            name="", collection_method="", plan_name="", interval="", interval_count="", quantity="",
            payment_kind="",
        )

        (imported,) = validate(tmp_path, DEFAULT_HEADER, [row]).rows

        assert imported.name == "C-1"
        assert imported.collection_method == "charge_automatically"
        assert imported.plan == PlanTerms("basic", "basic", 2985, "USD", "month", 1)
        assert imported.quantity == 1
        assert imported.payment_kind == "card"

    def test_minimal_header(self, tmp_path):
        header = "external_id,email,currency,plan_code,amount,start_date,payment_token"

        result = validate(tmp_path, header, ["C-1,a@example.com,eur,basic,10,2026-01-01,tok_success"])

        assert result.rejections == []
        assert result.rows[0].currency == "EUR"
        assert result.rows[0].amount_minor == 1000

    def test_zero_decimal_currency(self, tmp_path):
        result = validate(tmp_path, DEFAULT_HEADER, [default_row(currency="JPY", amount="1500")])

        assert result.rows[0].amount_minor == 1500

    def test_bad_rows_are_rejected_with_reasons(self, tmp_path):
        rows = [
            default_row("C-1"),
            default_row("C-2", amount=""),
            default_row("C-3", currency="XYZ"),
            default_row("C-4", start_date="2026-02-30"),
            default_row("C-5", amount="-3.00"),
            default_row("C-6", interval="fortnight"),
            default_row("C-7", amount="29.855"),
            default_row("C-8", amount='"1,000.00"'),
            default_row("C-9", quantity="0"),
            default_row("C-10", email="not-an-email"),
            default_row("C-11", collection_method="cash"),
            default_row("C-12", payment_token=""),
            default_row("C-13", payment_kind="cheque"),
            default_row("", amount="abc", currency=""),
            default_row("C-15", interval="month", interval_count="121"),
            default_row("C-16", payment_token="tok success"),
            default_row("C-17", plan_code="basic plan"),
            default_row("C" * 101),
        ]

        result = validate(tmp_path, DEFAULT_HEADER, rows)

        assert [row.external_id for row in result.rows] == ["C-1"]
        assert reasons(result) == {
            3: "amount is missing; give the price in major units, such as 29.85",
            4: "currency 'XYZ' is not a known ISO 4217 code; use a code such as USD or EUR",
            5: "start_date '2026-02-30' is not a date in the format %Y-%m-%d (such as 2026-01-31)",
            6: "amount '-3.00' is negative; a price is zero or more",
            7: "interval 'fortnight' is not one of day, week, month, year",
            8: "amount '29.855' has more than 2 decimal place(s), the precision of USD",
            9: "amount '1,000.00' is not a decimal number; write it like 29.85 with a dot for "
            "decimals and no thousands separator",
            10: "quantity 0 is out of range; use at least 1 and at most 1000000",
            11: "email 'not-an-email' is not a valid email address",
            12: "collection_method 'cash' is not one of charge_automatically, send_invoice",
            13: "collection_method is charge_automatically but payment_token is blank; "
            "give a payment token or use send_invoice",
            14: "payment_kind 'cheque' is not one of card, bank_debit",
            15: "external_id is missing; currency is missing; amount 'abc' is not a decimal number; "
            "write it like 29.85",
            16: "interval_count 121 is more than 36 for interval month; a billing period is at most 3 years",
            17: "payment_token 'tok success' contains whitespace; give the gateway's token exactly",
            18: "plan_code 'basic plan' is invalid; use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            19: "external_id is 101 characters long; the maximum is 100",
        }
        assert result.rejections[1] == RowRejection(4, "C-3", reasons(result)[4])

    def test_formula_text_is_rejected(self, tmp_path):
        rows = [
            default_row("C-1", name="@SUM(1)"),
            default_row("+C-2"),
            default_row("C-3", email="-x@example.com"),
            default_row("C-4", plan_name="\t=1+1"),
            default_row("C-5", name="Ada = Lovelace", plan_name="Basic + seats"),
        ]

        result = validate(tmp_path, DEFAULT_HEADER, rows)

        assert [row.external_id for row in result.rows] == ["C-5"]
        suffix = "so a spreadsheet opening an export would run it as a formula; remove the leading character"
        assert reasons(result) == {
            2: f"name '@SUM(1)' starts with '@', {suffix}",
            3: f"external_id '+C-2' starts with '+', {suffix}",
            4: f"email '-x@example.com' starts with '-', {suffix}",
            # Cells are stripped, so the tab goes and the formula is left.
            5: f"plan_name '=1+1' starts with '=', {suffix}",
        }

    def test_send_invoice_needs_no_token(self, tmp_path):
        row = default_row(collection_method="send_invoice", payment_token="", payment_kind="")

        (imported,) = validate(tmp_path, DEFAULT_HEADER, [row]).rows

        assert imported.payment_token == ""
        assert imported.collection_method == "send_invoice"

    def test_duplicate_external_id_rejects_every_occurrence(self, tmp_path):
        rows = [default_row("C-1"), default_row("C-2"), default_row("C-1", amount="30.00")]

        result = validate(tmp_path, DEFAULT_HEADER, rows)

        assert [row.external_id for row in result.rows] == ["C-2"]
        assert result.rejections == [
            RowRejection(2, "C-1", "external_id 'C-1' also appears on line(s) 4; keep one row per customer"),
            RowRejection(4, "C-1", "external_id 'C-1' also appears on line(s) 2; keep one row per customer"),
        ]

    def test_duplicate_of_an_invalid_row_is_rejected(self, tmp_path):
        rows = [default_row("C-1", currency="XYZ"), default_row("C-1")]

        result = validate(tmp_path, DEFAULT_HEADER, rows)

        assert result.rows == []
        assert reasons(result)[3] == "external_id 'C-1' also appears on line(s) 2; keep one row per customer"

    def test_plan_price_conflict_is_rejected(self, tmp_path):
        rows = [default_row("C-1"), default_row("C-2", amount="31.00", plan_name="Other name")]

        result = validate(tmp_path, DEFAULT_HEADER, rows)

        assert [row.external_id for row in result.rows] == ["C-1"]
        assert reasons(result) == {
            3: "plan_code 'basic' is 29.85 USD every 1 month(s) on line 2, but this row gives "
            "31.00 USD every 1 month(s); give each price its own plan_code, or add a plan_amount "
            "column so the difference becomes a negotiated price",
        }

    def test_plan_name_comes_from_first_row(self, tmp_path):
        rows = [default_row("C-1"), default_row("C-2", plan_name="Basic plan")]

        result = validate(tmp_path, DEFAULT_HEADER, rows)

        assert [row.plan.name for row in result.rows] == ["Basic", "Basic"]

    def test_plan_amount_makes_negotiated_price(self, tmp_path):
        header = DEFAULT_HEADER + ",plan_amount"
        rows = [default_row("C-1") + ",40.00", default_row("C-2", amount="40.00") + ",40.00"]

        result = validate(tmp_path, header, rows)

        assert result.rejections == []
        assert [row.plan.amount_minor for row in result.rows] == [4000, 4000]
        assert [row.price_override_minor for row in result.rows] == [2985, None]


class TestTelcoMapping:
    def test_rows_are_mapped(self, tmp_path):
        result = validate(tmp_path, TELCO_HEADER, TELCO_ROWS, mapping_parse(TELCO_MAPPING))

        assert result.rejections == []
        first, second, third, fourth, fifth = result.rows
        assert first.external_id == "1111-AAAAA"
        assert first.name == "Customer 1111-AAAAA"
        assert first.email == "1111-aaaaa@example.com"
        assert first.collection_method == "send_invoice"
        assert first.payment_terms_days == 14
        assert first.payment_token == ""
        assert first.start_date == date(2026, 2, 28)
        assert first.plan == PlanTerms("telco-monthly-2985", "Telco monthly 29.85 USD", 2985, "USD", "month", 1)
        assert second.start_date == date(2023, 5, 31)
        assert third.collection_method == "charge_automatically"
        assert (third.payment_token, third.payment_kind) == ("tok_success", "bank_debit")
        assert third.plan.code == "telco-monthly-4230"
        assert fourth.start_date == AS_OF
        assert fourth.plan.name == "Telco monthly 70.70 USD"
        assert (fourth.payment_token, fourth.payment_kind) == ("tok_success", "card")
        assert fifth.plan is first.plan

    def test_unknown_payment_method_and_bad_tenure(self, tmp_path):
        rows = [
            TELCO_ROWS[0].replace("Electronic check", "Cash"),
            TELCO_ROWS[1].replace(",34,", ",3.5,"),
            TELCO_ROWS[2].replace("42.30", ""),
        ]

        result = validate(tmp_path, TELCO_HEADER, rows, mapping_parse(TELCO_MAPPING))

        assert result.rows == []
        known = "'Bank transfer (automatic)', 'Credit card (automatic)', 'Electronic check', 'Mailed check'"
        assert reasons(result) == {
            2: "; ".join(
                f"column 'PaymentMethod' has 'Cash', which fields.{name}.map does not list "
                f"(it lists {known}); add it to the mapping"
                for name in ("collection_method", "payment_terms_days", "payment_token", "payment_kind")
            ),
            3: "tenure (months before --as-of) '3.5' is not a whole number",
            4: "amount is missing; give the price in major units, such as 29.85",
        }

    def test_blank_template_cell_leaves_field_missing(self, tmp_path):
        mapping = mapping_parse({
            "fields": {
                **TELCO_MAPPING["fields"],
                "external_id": {"template": "{customerID}"},
                "email": {"template": "{gender}@example.com"},
            }
        })
        row = TELCO_ROWS[2].replace("Male", "")

        result = validate(tmp_path, TELCO_HEADER, [row], mapping)

        assert reasons(result) == {2: "email is missing"}

    def test_date_column_with_format(self, tmp_path):
        mapping = mapping_parse({
            "fields": {
                **TELCO_MAPPING["fields"],
                "start_date": {"column": "Since", "date_format": "%d/%m/%Y"},
            }
        })
        header = TELCO_HEADER + ",Since"
        rows = [TELCO_ROWS[2] + ",01/02/2024", TELCO_ROWS[3] + ",2024-02-01"]

        result = validate(tmp_path, header, rows, mapping)

        assert result.rows[0].start_date == date(2024, 2, 1)
        assert reasons(result) == {
            3: "start_date '2024-02-01' is not a date in the format %d/%m/%Y (such as 31/01/2026)"
        }


class TestFirstPeriodStartOnOrAfter:
    @pytest.mark.parametrize(
        ("anchor", "interval", "count", "day", "expected"),
        [
            (date(2026, 4, 10), "month", 1, date(2026, 3, 31), date(2026, 4, 10)),
            (date(2020, 3, 31), "month", 1, date(2026, 3, 31), date(2026, 3, 31)),
            (date(2026, 1, 15), "month", 1, date(2026, 3, 31), date(2026, 4, 15)),
            (date(2026, 1, 31), "month", 1, date(2026, 2, 15), date(2026, 2, 28)),
            (date(2025, 1, 31), "month", 1, date(2025, 3, 1), date(2025, 3, 31)),
            (date(2025, 1, 20), "month", 3, date(2026, 3, 31), date(2026, 4, 20)),
            (date(2024, 2, 29), "year", 1, date(2026, 3, 1), date(2027, 2, 28)),
            (date(2026, 3, 2), "week", 2, date(2026, 3, 31), date(2026, 4, 13)),
            (date(2026, 3, 30), "day", 1, date(2026, 3, 31), date(2026, 3, 31)),
        ],
    )
    def test_period_start(self, anchor, interval, count, day, expected):
        assert first_period_start_on_or_after(anchor, interval, count, day) == expected

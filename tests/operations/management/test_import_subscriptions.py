"""import_subscriptions end to end through the command, against the real module services."""

from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ar.selectors import customer_contact, customer_id_for_external_id
from billing.operations.imports.reader import MAX_RECORD_BYTES
from billing.tenancy.selectors import tenant_exists
from payments.selectors import payment_methods_for_customer
from subscriptions.selectors import subscription_counts_by_status, subscription_list_for_customer
from tests.operations.csv_files import (
    DEFAULT_HEADER,
    TELCO_HEADER,
    TELCO_MAPPING,
    TELCO_ROWS,
    default_row,
    write_csv,
    write_mapping,
    write_text,
)

pytestmark = pytest.mark.django_db(databases="__all__")
TENANT = "acme"
AS_OF = "2026-03-31"


def run_import(path, *extra: str, tenant: str = TENANT, rejected: int = 0) -> list[str]:
    """Run the command and return its output lines, without the timing line.

    With ``rejected``, the command must fail with that many rejected rows
    after printing its report, as it does for scripts to notice.
    """
    output = StringIO()
    arguments = ["import_subscriptions", str(path), "--tenant", tenant, "--as-of", AS_OF, *extra]
    if rejected:
        with pytest.raises(CommandError) as raised:
            call_command(*arguments, stdout=output, stderr=StringIO())
        assert str(raised.value).startswith(f"{rejected} row(s) rejected")
    else:
        call_command(*arguments, stdout=output, stderr=StringIO())
    return [line for line in output.getvalue().splitlines() if not line.startswith("elapsed seconds: ")]


def import_error(path, *extra: str) -> str:
    with pytest.raises(CommandError) as raised:
        run_import(path, *extra)
    return str(raised.value)


def customer_of(external_id: str) -> str | None:
    return customer_id_for_external_id(tenant_id=TENANT, external_id=external_id)


def subscription_of(external_id: str):
    (subscription,) = subscription_list_for_customer(tenant_id=TENANT, customer_id=customer_of(external_id))
    return subscription


def assert_nothing_written() -> None:
    assert not tenant_exists(tenant_id=TENANT)
    assert sum(subscription_counts_by_status().values()) == 0


class TestDefaultLayout:
    def test_rows_are_imported(self, tmp_path):
        path = write_csv(tmp_path, DEFAULT_HEADER, [
            default_row("C-1"),
            default_row(
                "C-2", name="Grace Hopper", email="grace@example.com", collection_method="send_invoice",
                plan_code="pro", plan_name="Pro", amount="99.00", quantity="3", start_date="2026-03-31",
                payment_token="", payment_kind="",
            ),
        ])

        lines = run_import(path)

        assert lines == [
            "Import finished",
            "rows read: 2",
            "imported: 2",
            "updated: 0",
            "rejected: 0",
            "plans created: 2, plans already present: 0",
        ]
        first = customer_contact(customer_id=customer_of("C-1"))
        assert (first.name, first.email, first.currency) == ("Ada Lovelace", "ada@example.com", "USD")
        assert first.collection_method == "charge_automatically"
        (method,) = payment_methods_for_customer(customer_id=customer_of("C-1"))
        assert (method.token, method.kind, method.is_default) == ("tok_success", "card", True)
        assert customer_contact(customer_id=customer_of("C-2")).collection_method == "send_invoice"
        assert payment_methods_for_customer(customer_id=customer_of("C-2")) == []

        subscription = subscription_of("C-1")
        assert subscription.external_id == "C-1"
        assert (subscription.plan.code, subscription.plan.amount_minor, subscription.plan.interval) == (
            "basic", 2985, "month",
        )
        assert subscription.price_override_minor is None
        # Started 2026-01-15; periods before the cutover were billed by the old system.
        assert subscription.started_on == date(2026, 4, 15)
        second = subscription_of("C-2")
        assert (second.plan.code, second.quantity, second.started_on) == ("pro", 3, date(2026, 3, 31))

    def test_second_import_updates(self, tmp_path):
        run_import(write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1"), default_row("C-2")]))
        changed = write_csv(
            tmp_path, DEFAULT_HEADER,
            [default_row("C-1", quantity="4", name="Ada King"), default_row("C-2")],
            name="again.csv",
        )

        lines = run_import(changed)

        assert lines[1:5] == ["rows read: 2", "imported: 0", "updated: 2", "rejected: 0"]
        assert lines[5] == "plans created: 0, plans already present: 1"
        assert subscription_counts_by_status(tenant_id=TENANT)["active"] == 2
        assert subscription_of("C-1").quantity == 4
        assert customer_contact(customer_id=customer_of("C-1")).name == "Ada King"
        assert len(payment_methods_for_customer(customer_id=customer_of("C-1"))) == 1

    def test_bad_rows_are_reported_and_not_written(self, tmp_path):
        path = write_csv(tmp_path, DEFAULT_HEADER, [
            default_row("C-1"),
            default_row("C-2", amount=""),
            default_row("C-3", currency="XYZ"),
            default_row("C-4", start_date="31/01/2026"),
            default_row("C-5", amount="-3.00"),
            default_row("C-6"),
            default_row("C-6", amount="30.00"),
            default_row("C-8", interval="fortnight"),
        ])

        lines = run_import(path, rejected=7)

        assert lines == [
            "line 3 (C-2) rejected: amount is missing; give the price in major units, such as 29.85",
            "line 4 (C-3) rejected: currency 'XYZ' is not a known ISO 4217 code; use a code such as USD or EUR",
            "line 5 (C-4) rejected: start_date '31/01/2026' is not a date in the format %Y-%m-%d "
            "(such as 2026-01-31)",
            "line 6 (C-5) rejected: amount '-3.00' is negative; a price is zero or more",
            "line 7 (C-6) rejected: external_id 'C-6' also appears on line(s) 8; keep one row per customer",
            "line 8 (C-6) rejected: external_id 'C-6' also appears on line(s) 7; keep one row per customer",
            "line 9 (C-8) rejected: interval 'fortnight' is not one of day, week, month, year",
            "Import finished",
            "rows read: 8",
            "imported: 1",
            "updated: 0",
            "rejected: 7",
            "plans created: 1, plans already present: 0",
        ]
        assert customer_of("C-1") is not None
        for external_id in ("C-2", "C-3", "C-4", "C-5", "C-6", "C-8"):
            assert customer_of(external_id) is None, external_id
        assert subscription_counts_by_status(tenant_id=TENANT)["active"] == 1

    def test_formula_cells_are_rejected_and_not_written(self, tmp_path):
        rows = [
            default_row("C-1"),
            default_row("C-2", name='"=HYPERLINK(""http://attacker.example"",""x"")"'),
            default_row("C-3", email="=1+1@example.com"),
            default_row("@SUM(1)"),
            default_row("C-5", plan_name="-2+3"),
        ]
        path = write_csv(tmp_path, DEFAULT_HEADER, rows)

        lines = run_import(path, rejected=4)

        assert lines[:4] == [
            "line 3 (C-2) rejected: name '=HYPERLINK(\"http://attacker.example\",\"x\")' starts with '=', "
            "so a spreadsheet opening an export would run it as a formula; remove the leading character",
            "line 4 (C-3) rejected: email '=1+1@example.com' starts with '=', so a spreadsheet opening an "
            "export would run it as a formula; remove the leading character",
            "line 5 (@SUM(1)) rejected: external_id '@SUM(1)' starts with '@', so a spreadsheet opening an "
            "export would run it as a formula; remove the leading character",
            "line 6 (C-5) rejected: plan_name '-2+3' starts with '-', so a spreadsheet opening an export "
            "would run it as a formula; remove the leading character",
        ]
        assert customer_of("C-1") is not None
        for external_id in ("C-2", "C-3", "@SUM(1)", "C-5"):
            assert customer_of(external_id) is None

    def test_byte_order_mark_blank_cells_and_extra_columns(self, tmp_path):
        header = DEFAULT_HEADER + ",notes,region"
        row = default_row(
            "C-1", name="", collection_method="", plan_name="", interval="", interval_count="",
            quantity="", payment_kind="",
        )
        path = write_csv(tmp_path, header, [row + ",,EU"], bom=True)

        lines = run_import(path)

        assert lines[1:5] == ["rows read: 1", "imported: 1", "updated: 0", "rejected: 0"]
        assert customer_contact(customer_id=customer_of("C-1")).name == "C-1"
        subscription = subscription_of("C-1")
        assert (subscription.plan.name, subscription.plan.interval, subscription.quantity) == ("basic", "month", 1)

    def test_dry_run_writes_nothing(self, tmp_path):
        path = write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1"), default_row("C-2", amount="")])

        lines = run_import(path, "--dry-run", rejected=1)

        assert lines == [
            "line 3 (C-2) rejected: amount is missing; give the price in major units, such as 29.85",
            "Dry run: nothing was written",
            "rows read: 2",
            "would be imported: 1",
            "would be updated: 0",
            "rejected: 1",
        ]
        assert_nothing_written()

    def test_dry_run_counts_updates(self, tmp_path):
        path = write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1"), default_row("C-2")])
        run_import(write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1")], name="first.csv"))

        lines = run_import(path, "--dry-run")

        assert lines[2:4] == ["would be imported: 1", "would be updated: 1"]
        assert customer_of("C-2") is None

    def test_backfill_keeps_start_date(self, tmp_path):
        path = write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1", start_date="2026-01-15")])

        run_import(path, "--backfill")

        assert subscription_of("C-1").started_on == date(2026, 1, 15)

    @pytest.mark.parametrize("start_date", ["2300-05-01", "2999-01-01", "1969-12-31"])
    def test_out_of_range_start_date_is_rejected_whole(self, tmp_path, start_date):
        path = write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1", start_date=start_date)])
        message = (
            f"line 2 (C-1) rejected: start_date {start_date} is outside the supported range "
            "1970-01-01 to 2199-12-31; fix the date in the file"
        )

        dry_lines = run_import(path, "--backfill", "--dry-run", rejected=1)
        lines = run_import(path, "--backfill", rejected=1)

        assert dry_lines[0] == message
        assert dry_lines[3] == "would be imported: 0"
        assert lines[0] == message
        assert not any("partly saved" in line for line in lines)
        assert customer_of("C-1") is None
        assert sum(subscription_counts_by_status().values()) == 0

    def test_inactive_plan_rejects_row_whole(self, tmp_path):
        from datetime import UTC, datetime

        from subscriptions.services import plan_set_active

        run_import(write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1")]))
        plan_set_active(tenant_id=TENANT, code="basic", active=False, now=datetime(2026, 3, 31, tzinfo=UTC))
        path = write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-2")], name="second.csv")
        message = (
            "line 2 (C-2) rejected: subscription was not saved: plan 'basic' in tenant 'acme' is inactive "
            "and takes no new subscriptions; choose an active plan or reactivate this one"
        )

        dry_lines = run_import(path, "--dry-run", rejected=1)
        lines = run_import(path, rejected=1)

        assert dry_lines[0] == message
        assert dry_lines[3] == "would be imported: 0"
        assert lines[0] == message
        assert not any("partly saved" in line for line in lines)
        assert customer_of("C-2") is None

    def test_dry_run_reports_plan_rejected_by_module(self, tmp_path):
        run_import(write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1")]))
        yearly = write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-2", interval="year")], name="yearly.csv")

        lines = run_import(yearly, "--dry-run", rejected=1)

        assert lines[0].startswith("line 2 (C-2) rejected: plan 'basic' was not saved: plan 'basic' has 1 subscription(s)")
        assert lines[3] == "would be imported: 0"

    def test_plan_rejected_by_module_rejects_its_rows(self, tmp_path):
        run_import(write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1")]))
        yearly = write_csv(
            tmp_path, DEFAULT_HEADER,
            [default_row("C-2", interval="year"), default_row("C-3", plan_code="other")],
            name="yearly.csv",
        )

        lines = run_import(yearly, rejected=1)

        assert lines[0] == (
            "line 2 (C-2) rejected: plan 'basic' was not saved: plan 'basic' has 1 subscription(s), so "
            "its interval cannot change from 'month' to 'year'; create a plan with a new code and change "
            "the subscriptions' plan to it, for example with POST /api/v1/subscriptions/{id}/change-plan"
        )
        assert lines[2:6] == ["rows read: 2", "imported: 1", "updated: 0", "rejected: 1"]
        assert customer_of("C-2") is None
        assert customer_of("C-3") is not None

    def test_invalid_tenant(self, tmp_path):
        path = write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1")])

        with pytest.raises(CommandError) as raised:
            run_import(path, tenant="Acme Inc")

        assert str(raised.value) == (
            "tenant id 'Acme Inc' is invalid; use 1 to 63 lower-case letters, digits and hyphens; "
            "nothing was imported"
        )
        assert sum(subscription_counts_by_status().values()) == 0

    def test_invalid_as_of(self, tmp_path):
        path = write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1")])

        with pytest.raises(CommandError) as raised:
            call_command("import_subscriptions", str(path), "--tenant", TENANT, "--as-of", "2026-02-30")

        assert str(raised.value) == "--as-of '2026-02-30' is not a date; use YYYY-MM-DD"
        assert_nothing_written()


class TestRejectedFile:
    def test_wrong_encoding(self, tmp_path):
        text = "\n".join([DEFAULT_HEADER, default_row("C-1"), default_row("C-2", name="Zoë Ørsted")]) + "\n"
        path = write_text(tmp_path, "latin.csv", text, encoding="latin-1")

        assert import_error(path) == (
            "line 3 is not UTF-8 (byte 0xeb at byte 7 of the line); save the file as UTF-8, for example "
            "with iconv -f WINDOWS-1252 -t UTF-8; nothing was imported"
        )
        assert_nothing_written()

    def test_truncated_file(self, tmp_path):
        text = "\n".join([DEFAULT_HEADER, default_row("C-1"), default_row("C-2")[:40]])
        path = write_text(tmp_path, "cut.csv", text)

        assert import_error(path) == (
            "line 3 has 5 fields but the header has 14; the file is truncated or ragged, so export "
            "it again; nothing was imported"
        )
        assert_nothing_written()

    def test_very_wide_row(self, tmp_path):
        wide = default_row("C-2") + "," * 100_000
        path = write_text(tmp_path, "wide.csv", "\n".join([DEFAULT_HEADER, default_row("C-1"), wide]) + "\n")

        assert import_error(path) == (
            "line 3 is longer than 65536 bytes; the file is not a customer export, or its line breaks "
            "are missing; nothing was imported"
        )
        assert_nothing_written()

    def test_missing_file(self, tmp_path):
        path = tmp_path / "absent.csv"

        assert import_error(path) == f"file {str(path)!r} does not exist; check the path; nothing was imported"
        assert_nothing_written()

    def test_utf16_file(self, tmp_path):
        text = "\n".join([DEFAULT_HEADER, default_row("C-1")]) + "\n"
        path = write_text(tmp_path, "utf16.csv", text, encoding="utf-16")

        assert import_error(path) == (
            f"file {str(path)!r} is UTF-16, not UTF-8; save it as UTF-8 (for example: iconv -f UTF-16 "
            "-t UTF-8); nothing was imported"
        )
        assert_nothing_written()

    def test_file_cut_inside_quotes(self, tmp_path):
        cut = default_row("C-2", name='"Zoe, Ltd')
        text = "\n".join([DEFAULT_HEADER, default_row("C-1"), cut])
        path = write_text(tmp_path, "cut.csv", text)

        assert import_error(path) == (
            "line 3 is not valid CSV (unexpected end of data); the file is truncated or a quote is not "
            "closed; nothing was imported"
        )
        assert_nothing_written()

    def test_million_column_row_over_quoted_lines(self, tmp_path):
        # No line is long: each ends inside a quoted cell, so the record goes on.
        chunk = ",x" * 30_000 + ',"\n"'
        wide = default_row("C-2") + chunk * 34
        path = write_text(tmp_path, "wide.csv", "\n".join([DEFAULT_HEADER, default_row("C-1"), wide]) + "\n")

        assert import_error(path) == (
            f"the record starting on line 3 is longer than {MAX_RECORD_BYTES} bytes; a quote is not "
            "closed, or the row has far too many cells; nothing was imported"
        )
        assert_nothing_written()

    def test_invalid_mapping(self, tmp_path):
        path = write_csv(tmp_path, TELCO_HEADER, TELCO_ROWS)
        document = {"fields": {**TELCO_MAPPING["fields"], "amount": {"column": "MonthlyCharges", "value": "1"}}}
        mapping = write_mapping(tmp_path, document)

        assert import_error(path, "--mapping", str(mapping)) == (
            f"mapping file {str(mapping)!r}: fields.amount needs exactly one of column, value, template, "
            "months_before_as_of (found column, value); nothing was imported"
        )
        assert_nothing_written()

    def test_missing_required_column(self, tmp_path):
        header = DEFAULT_HEADER.replace("amount", "price")
        path = write_csv(tmp_path, header, [default_row("C-1")])

        assert import_error(path) == (
            "column 'amount' is missing from the header; the default layout needs external_id, currency, "
            "amount, email, plan_code, start_date, or pass --mapping for another layout; nothing was imported"
        )
        assert_nothing_written()


class TestTelcoMapping:
    def test_rows_are_imported(self, tmp_path):
        path = write_csv(tmp_path, TELCO_HEADER, TELCO_ROWS, bom=True)
        mapping = write_mapping(tmp_path, TELCO_MAPPING)

        lines = run_import(path, "--mapping", str(mapping))

        assert lines == [
            "Import finished",
            "rows read: 5",
            "imported: 5",
            "updated: 0",
            "rejected: 0",
            "plans created: 4, plans already present: 0",
        ]
        contact = customer_contact(customer_id=customer_of("1111-AAAAA"))
        assert (contact.name, contact.email) == ("Customer 1111-AAAAA", "1111-aaaaa@example.com")
        assert contact.collection_method == "send_invoice"
        assert payment_methods_for_customer(customer_id=customer_of("1111-AAAAA")) == []
        (method,) = payment_methods_for_customer(customer_id=customer_of("3333-CCCCC"))
        assert (method.token, method.kind) == ("tok_success", "bank_debit")

        subscription = subscription_of("3333-CCCCC")
        assert (subscription.plan.code, subscription.plan.name) == ("telco-monthly-4230", "Telco monthly 42.30 USD")
        assert subscription.plan.amount_minor == 4230
        # 34 months before the cutover is 2023-05-31, so billing resumes on the cutover date.
        assert subscription_of("2222-BBBBB").started_on == date(2026, 3, 31)
        # 45 months before 2026-03-31 is 2022-06-30: the anchor day is the 30th
        # and the period that started on 2026-03-30 counts as billed.
        assert subscription.started_on == date(2026, 4, 30)
        assert subscription_of("4444-DDDDD").started_on == date(2026, 3, 31)
        assert subscription_of("1111-AAAAA").plan is not None
        assert subscription_of("1111-AAAAA").plan.code == subscription_of("5555-EEEEE").plan.code

    def test_second_import_updates(self, tmp_path):
        path = write_csv(tmp_path, TELCO_HEADER, TELCO_ROWS)
        mapping = write_mapping(tmp_path, TELCO_MAPPING)
        run_import(path, "--mapping", str(mapping))

        lines = run_import(path, "--mapping", str(mapping))

        assert lines[1:6] == [
            "rows read: 5", "imported: 0", "updated: 5", "rejected: 0", "plans created: 0, plans already present: 4",
        ]
        assert sum(subscription_counts_by_status(tenant_id=TENANT).values()) == 5


class TestBilledStartDates:
    def test_moved_start_of_billed_subscription_is_rejected_whole(self, tmp_path):
        from datetime import UTC, datetime

        from payments.selectors import payment_methods_for_customer
        from subscriptions.services import bill_run_execute

        path = write_csv(tmp_path, DEFAULT_HEADER, [default_row("C-1", start_date="2026-01-15")])
        run_import(path)
        bill_run_execute(as_of=date(2026, 4, 30), now=datetime(2026, 4, 30, tzinfo=UTC))
        started_on = subscription_of("C-1").started_on
        message = (
            f"line 2 (C-1) rejected: subscription 'C-1' is billed from {started_on.isoformat()}, and this "
            "import would move its start to 2026-01-15; import with the --as-of (and --backfill choice) "
            "of the first import"
        )

        dry_lines = run_import(path, "--backfill", "--dry-run", rejected=1)
        lines = run_import(path, "--backfill", rejected=1)

        assert dry_lines[0] == message
        assert lines[0] == message
        assert not any("partly saved" in line for line in lines)
        assert subscription_of("C-1").started_on == started_on
        assert len(payment_methods_for_customer(customer_id=customer_of("C-1"))) == 1

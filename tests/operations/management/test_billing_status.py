"""billing_status after a real flow: import, bill run, relay, collect and email."""

import json
from datetime import UTC, date, datetime
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from billing.operations.settle import flow_settle
from eventbus.registry import all_modules
from subscriptions.services import bill_run_execute
from tests.operations.csv_files import DEFAULT_HEADER, default_row, write_csv

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)
AS_OF = date(2026, 3, 31)
NOW = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)


def import_rows(tmp_path, tenant: str, rows: list[str]) -> None:
    path = write_csv(tmp_path, DEFAULT_HEADER, rows, name=f"{tenant}.csv")
    call_command(
        "import_subscriptions", str(path), "--tenant", tenant, "--as-of", AS_OF.isoformat(), "--backfill",
        stdout=StringIO(), stderr=StringIO(),
    )


def status_json(*extra: str) -> dict:
    output = StringIO()
    call_command("billing_status", "--json", *extra, stdout=output)
    return json.loads(output.getvalue())


@pytest.fixture
def billed(tmp_path):
    """Two tenants billed once as of AS_OF, with the flow settled."""
    import_rows(tmp_path, "acme", [
        default_row("C-1", amount="29.85", start_date="2026-03-31"),
        default_row("C-2", amount="10.00", plan_code="lite", start_date="2026-03-20", payment_token="tok_decline"),
        default_row(
            "C-3", amount="50.00", plan_code="pro", start_date="2026-03-01",
            collection_method="send_invoice", payment_token="", payment_kind="",
        ),
    ])
    import_rows(tmp_path, "globex", [
        default_row("G-1", currency="EUR", amount="5.00", plan_code="eu", start_date="2026-03-31"),
    ])
    bill_run_execute(as_of=AS_OF, now=NOW)
    settle = flow_settle(now=NOW, max_days=0)
    assert settle.settled


class TestBillingStatus:
    def test_json_keys_and_values(self, billed):
        status = status_json()

        modules = sorted(module.name for module in all_modules())
        assert list(status) == sorted(
            ["subscriptions", "invoices", "payments", "outbox_pending", "dead_letters", "emails_sent"]
        )
        assert status["subscriptions"] == {"active": 3, "canceled": 0, "past_due": 1, "trialing": 0}
        assert status["invoices"] == {
            "open": {"USD": {"count": 1, "amount_minor": 5000}},
            "paid": {"EUR": {"count": 1, "amount_minor": 500}, "USD": {"count": 1, "amount_minor": 2985}},
            "uncollectible": {"USD": {"count": 1, "amount_minor": 1000}},
        }
        assert status["payments"] == {
            "failed": 1, "pending": 0, "processing": 0, "retry_scheduled": 0, "succeeded": 2,
        }
        assert status["outbox_pending"] == dict.fromkeys(modules, 0)
        assert status["dead_letters"] == dict.fromkeys(modules, 0)
        assert status["emails_sent"] == len(mail.outbox)
        assert status["emails_sent"] == 7

    def test_tenant_narrows_the_counts(self, billed):
        status = status_json("--tenant", "globex")

        assert status["subscriptions"] == {"active": 1, "canceled": 0, "past_due": 0, "trialing": 0}
        assert status["invoices"] == {"paid": {"EUR": {"count": 1, "amount_minor": 500}}}
        assert status["payments"]["succeeded"] == 1
        assert status["emails_sent"] == 2

    def test_text_report(self, billed):
        output = StringIO()

        call_command("billing_status", "--tenant", "globex", stdout=output)

        lines = output.getvalue().splitlines()
        assert lines[:6] == [
            "Subscriptions by status:",
            "  active: 1",
            "  canceled: 0",
            "  past_due: 0",
            "  trialing: 0",
            "Invoices by status:",
        ]
        assert lines[6] == "  paid: 1 invoice(s), 5.00 EUR"
        assert lines[-1] == "Emails sent: 2"

    def test_unknown_tenant(self):
        with pytest.raises(CommandError) as raised:
            call_command("billing_status", "--tenant", "nobody")

        assert str(raised.value) == "tenant 'nobody' does not exist; check the id, or leave out --tenant"

    def test_empty_platform(self):
        status = status_json()

        assert status["subscriptions"] == {"active": 0, "canceled": 0, "past_due": 0, "trialing": 0}
        assert status["invoices"] == {}
        assert status["emails_sent"] == 0

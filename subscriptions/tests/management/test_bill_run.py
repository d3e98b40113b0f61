import io
import json
import re
from datetime import UTC, date, datetime

import pytest
from django.core.management import CommandError, call_command

from subscriptions.management.commands.bill_run import Command
from subscriptions.models import BillingPeriod, BillRun
from subscriptions.tests.factories import PlanFactory, SubscriptionFactory
from subscriptions.tests.support import ALIAS

pytestmark = pytest.mark.django_db(databases="__all__")


class Terminal(io.StringIO):
    """Captured output that claims to be a terminal, so the command draws its progress bar."""

    def isatty(self) -> bool:
        return True


def run(*args: str, stdout=None) -> str:
    stdout = stdout or io.StringIO()
    call_command("bill_run", *args, stdout=stdout)
    return stdout.getvalue()


@pytest.fixture
def due_subscriptions():
    SubscriptionFactory(start_date=date(2026, 1, 1), quantity=2)
    SubscriptionFactory(start_date=date(2026, 1, 15), plan=PlanFactory(amount_minor=500, currency="EUR"))
    SubscriptionFactory(start_date=date(2026, 1, 1), plan=PlanFactory(trial_days=60))


class TestBillRunCommand:
    def test_prints_summary(self, due_subscriptions):
        output = run("--as-of", "2026-02-01")

        run_id = BillRun.objects.using(ALIAS).get().id
        lines = output.splitlines()
        assert lines[0] == f"Bill run {run_id} as of 2026-02-01"
        assert lines[1:5] == [
            "  subscriptions seen: 3",
            "  periods billed:     3",
            "  amount:             5.00 EUR, 116.00 USD",
            "  skipped:            trialing 1",
        ]
        assert re.fullmatch(r"  elapsed:            \d+\.\d\d s", lines[5])
        assert len(lines) == 6
        assert "\r" not in output
        assert BillingPeriod.objects.using(ALIAS).count() == 3

    def test_json_summary(self, due_subscriptions):
        output = run("--as-of", "2026-02-01", "--json")

        summary = json.loads(output)
        assert summary["bill_run_id"] == str(BillRun.objects.using(ALIAS).get().id)
        assert summary["as_of"] == "2026-02-01"
        assert summary["dry_run"] is False
        assert summary["subscriptions_seen"] == 3
        assert summary["periods_billed"] == 3
        assert summary["skipped"] == {"trialing": 1}
        assert summary["amount_minor_by_currency"] == {"EUR": 500, "USD": 11600}
        assert isinstance(summary["elapsed_seconds"], float)
        assert output.count("\n") == 1

    def test_dry_run_bills_nothing(self, due_subscriptions):
        output = run("--as-of", "2026-02-01", "--dry-run", "--json")

        summary = json.loads(output)
        assert summary["dry_run"] is True
        assert summary["periods_billed"] == 3
        assert BillingPeriod.objects.using(ALIAS).count() == 0
        assert BillRun.objects.using(ALIAS).get().dry_run is True

    def test_dry_run_text_says_nothing_billed(self, due_subscriptions):
        output = run("--as-of", "2026-02-01", "--dry-run")

        assert output.splitlines()[0].endswith("as of 2026-02-01: nothing was billed")
        assert "  periods to bill:    3" in output.splitlines()

    def test_tenant_option(self, due_subscriptions):
        SubscriptionFactory(tenant_id="globex", start_date=date(2026, 1, 1))

        summary = json.loads(run("--as-of", "2026-01-01", "--tenant", "globex", "--json"))

        assert summary["subscriptions_seen"] == 1
        assert summary["periods_billed"] == 1

    def test_as_of_defaults_to_today_in_utc(self):
        today = datetime.now(UTC).date()
        SubscriptionFactory(start_date=today)

        summary = json.loads(run("--json"))

        assert summary["as_of"] == today.isoformat()
        assert summary["periods_billed"] == 1

    def test_progress_bar_on_terminal(self, due_subscriptions):
        output = run("--as-of", "2026-02-01", stdout=Terminal())

        assert output.startswith("\r[------------------------------] 0/3 subscriptions")
        assert "\r[##############################] 3/3 subscriptions\n" in output
        assert output.split("\n", 1)[1].startswith("Bill run ")

    def test_no_progress_bar_with_json(self, due_subscriptions):
        output = run("--as-of", "2026-02-01", "--json", stdout=Terminal())

        assert "\r" not in output
        assert json.loads(output)["periods_billed"] == 3

    @pytest.mark.parametrize("value", ["2026-02-30", "01/02/2026", "tomorrow"])
    def test_bad_date_is_rejected(self, value):
        with pytest.raises(CommandError) as raised:
            run("--as-of", value)

        assert str(raised.value) == f"--as-of {value!r} is not a date; use YYYY-MM-DD, for example 2026-01-31"
        assert BillRun.objects.using(ALIAS).count() == 0

    def test_unknown_tenant_is_rejected(self, due_subscriptions):
        with pytest.raises(CommandError) as raised:
            run("--tenant", "initech")

        assert str(raised.value) == (
            "tenant 'initech' does not exist; create it first with manage.py tenants create initech"
        )
        assert BillRun.objects.using(ALIAS).count() == 0

    def test_help_describes_every_option(self):
        # argparse wraps lines, so compare with whitespace collapsed.
        text = " ".join(Command().create_parser("manage.py", "bill_run").format_help().split())

        assert "Bill every subscription period that started by a date and is not billed yet." in text
        assert "as YYYY-MM-DD (default: today in UTC)" in text
        assert "(default: every tenant)" in text
        assert "Report what would be billed and bill nothing" in text
        assert "Print the summary as one JSON object" in text


class TestAsOfHorizon:
    def test_far_future_date_needs_allow_future(self):
        with pytest.raises(CommandError) as raised:
            run("--as-of", "2062-12-04")

        message = str(raised.value)
        assert message.startswith("--as-of 2062-12-04 is ")
        assert message.endswith(
            "which would bill periods that have not started; check the date, or pass "
            "--allow-future to bill ahead on purpose"
        )
        assert BillRun.objects.count() == 0

    def test_allow_future_runs_the_bill_run(self):
        summary = json.loads(run("--as-of", "2062-12-04", "--allow-future", "--dry-run", "--json"))

        assert summary["as_of"] == "2062-12-04"

    def test_date_near_year_9999_is_rejected(self):
        with pytest.raises(CommandError) as raised:
            run("--as-of", "9999-12-31", "--allow-future")

        assert str(raised.value) == "--as-of 9999-12-31 is too far ahead; use a date before 2200-01-01"
        assert BillRun.objects.count() == 0

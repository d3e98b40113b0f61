"""manage.py check_invariants: its text and JSON output and its exit code."""

import json
from io import StringIO

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def run_command(*args: str, capsys) -> tuple[int, str, str]:
    """Run the command as manage.py does, so a failure becomes an exit code."""
    try:
        ManagementUtility(["manage.py", "check_invariants", *args]).execute()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def break_an_inbox() -> str:
    from payments.models import ProcessedEvent

    row = ProcessedEvent.objects.filter(event_type="ar.payment.collection.requested").first()
    row.delete()
    return str(row.event_id)


class TestCheckInvariantsCommand:
    def test_settled_flow_exits_zero(self, settled_flow, capsys):
        code, out, err = run_command("--stale-after", "0", capsys=capsys)

        assert code == 0
        assert "events_applied: passed" in out
        assert out.rstrip().endswith("all checks passed")
        assert err == ""

    def test_broken_inbox_exits_one(self, settled_flow, capsys):
        event_id = break_an_inbox()

        code, out, err = run_command("--stale-after", "0", capsys=capsys)

        assert code == 1
        assert "events_applied: FAILED (1 violation(s))" in out
        assert "bus_module=payments" in out
        assert f"event_id={event_id}" in out
        assert err.strip() == "CommandError: 1 invariant check(s) failed: events_applied"

    def test_json_shape(self, settled_flow, capsys):
        event_id = break_an_inbox()

        code, out, _ = run_command("--json", "--stale-after", "0", "--tenant", "acme", capsys=capsys)

        report = json.loads(out)
        assert code == 1
        assert set(report) == {"tenant_id", "passed", "checks"}
        assert report["tenant_id"] == "acme"
        assert report["passed"] is False
        failed = [check for check in report["checks"] if not check["passed"]]
        assert [check["name"] for check in failed] == ["events_applied"]
        assert set(failed[0]) == {"name", "description", "passed", "rows_checked", "violation_count", "violations"}
        assert failed[0]["violations"] == [{
            "message": "ar.payment.collection.requested from ar is neither in the payments inbox "
            "nor in its dead letters",
            "ids": {"event_id": event_id, "bus_module": "payments"},
        }]

    def test_unknown_tenant_rejected(self):
        with pytest.raises(CommandError) as error:
            call_command("check_invariants", "--tenant", "globex", stdout=StringIO())

        assert str(error.value) == "tenant 'globex' does not exist; check the id, or leave out --tenant"

    def test_negative_stale_after_rejected(self):
        with pytest.raises(CommandError) as error:
            call_command("check_invariants", "--stale-after", "-1", stdout=StringIO())

        assert str(error.value) == "--stale-after must be 0 or more seconds, not -1.0"

    @pytest.mark.parametrize("value", ["nan", "inf", "1e20"])
    def test_stale_after_that_is_no_duration_rejected(self, value):
        with pytest.raises(CommandError) as error:
            call_command("check_invariants", "--stale-after", value, stdout=StringIO())

        assert str(error.value) == (
            f"--stale-after {float(value)} is not a number of seconds up to 31536000 (a year); "
            "pass a smaller number"
        )

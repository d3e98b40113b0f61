"""Invariants of the billing platform, checked across modules through their selectors.

``invariants_check`` only reads, so an operator can run it against
production data (``manage.py check_invariants``).
"""

from billing.invariants.check import DEFAULT_STALE_AFTER, invariants_check
from billing.invariants.report import CheckResult, InvariantReport, Violation

__all__ = ["DEFAULT_STALE_AFTER", "CheckResult", "InvariantReport", "Violation", "invariants_check"]

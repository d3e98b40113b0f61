"""Prometheus instruments that domain code feeds through small hooks.

This module imports no domain module, so a domain module may call its hooks
without depending on another domain module or on prometheus_client itself.
"""

from prometheus_client import Histogram

# Bucket bounds in seconds, from a run with nothing due to one over a large
# subscriber base.
BILL_RUN_DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
BILL_RUN_DURATION = Histogram(
    "billing_bill_run_duration_seconds",
    "Wall-clock time of one bill run, from its start to its summary.",
    ["dry_run"],
    buckets=BILL_RUN_DURATION_BUCKETS,
)


def observe_bill_run(*, elapsed_seconds: float, dry_run: bool) -> None:
    """Record one finished bill run's duration."""
    BILL_RUN_DURATION.labels(dry_run="true" if dry_run else "false").observe(elapsed_seconds)

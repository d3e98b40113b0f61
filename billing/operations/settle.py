"""Drive the event flow to rest in one process: relay, send, retry, move the clock.

The embedded setup has no Celery beat or consumer processes, so the demo
does their work here in a loop until no outbox row is pending and no
payment waits for a retry.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from eventbus.registry import all_modules
from eventbus.relay import relay_outbox
from eventbus.selectors import outbox_backlogs
from notifications.services import notifications_send_pending
from payments.selectors import payment_counts_by_status
from payments.services import payments_retry_due

logger = logging.getLogger(__name__)

# Relay passes over every outbox before drain gives up. Each pass publishes
# everything pending, and one bill run's events need about four passes
# (subscriptions, ar, payments, ar again, notifications).
MAX_DRAIN_PASSES = 100
# Rounds of relay, send and retry on one simulated day before moving on.
MAX_ROUNDS_PER_DAY = 20


@dataclass
class SettleSummary:
    settled: bool
    events_relayed: int
    emails_sent_by_sweep: int
    # Charges made by payments_retry_due: retries, and first charges a
    # handler's after-commit step did not make.
    payment_retries: int
    days_advanced: int
    # The simulated time the flow settled at (or gave up at).
    clock: datetime
    outbox_pending: int
    payments_awaiting_retry: int


def outboxes_drain(*, max_passes: int = MAX_DRAIN_PASSES) -> int:
    """Relay every module's outbox, pass after pass, until a pass publishes nothing; return the count.

    With the in-process bus each publish also runs the consumers' handlers,
    whose events the next pass publishes.
    """
    total = 0
    for _ in range(max_passes):
        published = 0
        for module in all_modules():
            result = relay_outbox(module=module.name)
            published += result.published
        total += published
        if published == 0:
            break
    return total


def flow_settle(*, now: datetime, max_days: int) -> SettleSummary:
    """Relay, send pending emails and charge due payments until the flow rests.

    Payment retries are due days after a failure, so when only retries are
    left the simulated clock moves one day forward, at most ``max_days``
    times. Payments and their events on those days carry the simulated time.
    """
    clock = now
    relayed = sent = retried = 0
    days = 0
    while True:
        for _ in range(MAX_ROUNDS_PER_DAY):
            round_relayed = outboxes_drain()
            round_sent = notifications_send_pending(now=clock, older_than_seconds=0)
            round_retried = payments_retry_due(as_of=clock).attempted
            relayed += round_relayed
            sent += round_sent
            retried += round_retried
            if not (round_relayed or round_sent or round_retried):
                break

        pending = sum(backlog.pending for backlog in outbox_backlogs())
        awaiting_retry = payment_counts_by_status()["retry_scheduled"]
        settled = pending == 0 and awaiting_retry == 0
        if settled or days >= max_days:
            break
        days += 1
        clock += timedelta(days=1)

    logger.info(
        "Flow %s after %s simulated day(s): %s event(s) relayed, %s payment retries",
        "settled" if settled else "did not settle", days, relayed, retried,
    )
    return SettleSummary(
        settled=settled,
        events_relayed=relayed,
        emails_sent_by_sweep=sent,
        payment_retries=retried,
        days_advanced=days,
        clock=clock,
        outbox_pending=pending,
        payments_awaiting_retry=awaiting_retry,
    )

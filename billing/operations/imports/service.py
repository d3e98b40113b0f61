"""Import customers, payment methods and subscriptions through each module's services.

The whole file is read and every row validated before the first write, so a
file-level error writes nothing and a rejected row writes nothing for it.
Valid rows are then written plan by plan and row by row: the plan
(subscriptions), the customer (ar), its payment method (payments) and the
subscription (subscriptions). Each step is an upsert keyed by the code or
external id, so importing the same file again updates instead of duplicating.
"""

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from django.db import transaction

from ar.errors import ArError
from ar.selectors import customer_id_for_external_id
from ar.services import customer_upsert, customer_validate
from billing.operations.imports.mapping import ImportMapping, default_mapping, mapping_bind
from billing.operations.imports.reader import csv_table_read
from billing.operations.imports.rows import (
    ImportRow,
    PlanTerms,
    RowRejection,
    first_period_start_on_or_after,
    rows_validate,
)
from billing.tenancy.models import TENANT_ID_PATTERN
from billing.tenancy.services import InvalidTenant, tenant_ensure
from payments.errors import PaymentsError
from payments.services import payment_method_upsert
from subscriptions.errors import SubscriptionsError
from subscriptions.selectors import billed_start_dates_for_imports
from subscriptions.services import plan_upsert, subscription_upsert_imported
from subscriptions.services.common import ALIAS as SUBSCRIPTIONS_ALIAS

logger = logging.getLogger(__name__)

# Errors a module raises for a value it cannot store. Validation mirrors
# their rules, so one of them here means a rule the import does not know yet.
_MODULE_ERRORS = (ArError, PaymentsError, SubscriptionsError)

# Rows between two progress reports.
PROGRESS_EVERY_ROWS = 1000

ProgressCallback = Callable[[int, int], None]


@dataclass
class ImportSummary:
    rows_read: int = 0
    imported: int = 0
    # Rows whose subscription existed already; what the file changes is applied.
    updated: int = 0
    rejected: int = 0
    plans_created: int = 0
    # Plans that existed before this import; each is updated where the file changes it.
    plans_existing: int = 0
    elapsed_seconds: float = 0.0
    dry_run: bool = False
    rejections: list[RowRejection] = field(default_factory=list)
    # Rows a module rejected after an earlier step of the same row was saved.
    partially_written: list[RowRejection] = field(default_factory=list)


def subscriptions_import(
    *,
    tenant_id: str,
    path: Path,
    as_of: date,
    now: datetime,
    mapping: ImportMapping | None = None,
    backfill: bool = False,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import the CSV file at ``path`` into ``tenant_id``; return what was read, written and rejected.

    ``as_of`` is the cutover date: periods that start before it count as
    billed by the old system, so each subscription is passed to the
    subscriptions module with its first period start on or after ``as_of`` as
    its start date. ``backfill`` passes each row's own start date instead, so
    the next bill run bills every period since then.

    Raise ``InvalidTenant`` for a malformed tenant id and ``InvalidImportFile``
    when the file cannot be read as a whole; both write nothing. With ``dry_run`` every row is validated and counted as it would
    be imported or updated, and nothing is written.
    """
    started = time.monotonic()
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.match(tenant_id):
        raise InvalidTenant(
            f"tenant id {tenant_id!r} is invalid; use 1 to 63 lower-case letters, digits and hyphens"
        )
    mapping = mapping or default_mapping()
    table = csv_table_read(path)
    bound = mapping_bind(mapping, table.header)
    validation = rows_validate(records=table.records, mapping=bound, as_of=as_of)
    rows, rejections = _module_checks(validation.rows, tenant_id)
    rows, start_rejections = _billed_start_checks(rows, tenant_id, as_of if not backfill else None)
    rejections.extend(start_rejections)
    rows, trial_rejections = _subscription_trial(rows, tenant_id, as_of if not backfill else None, now)
    rejections.extend(trial_rejections)
    rejections = sorted([*validation.rejections, *rejections], key=lambda rejection: rejection.line_number)

    summary = ImportSummary(rows_read=len(table.records), dry_run=dry_run, rejections=rejections)
    if dry_run:
        for row in rows:
            exists = customer_id_for_external_id(tenant_id=tenant_id, external_id=row.external_id)
            summary.updated += exists is not None
            summary.imported += exists is None
    else:
        tenant_ensure(tenant_id=tenant_id, now=now)
        rows = _plans_write(rows, tenant_id, now, summary)
        _rows_write(rows, tenant_id, as_of if not backfill else None, now, summary, progress)

    summary.rejections.sort(key=lambda rejection: rejection.line_number)
    summary.rejected = len(summary.rejections)
    summary.elapsed_seconds = time.monotonic() - started
    logger.info(
        "Imported %s: %s row(s) read, %s imported, %s updated, %s rejected%s",
        path.name, summary.rows_read, summary.imported, summary.updated, summary.rejected,
        " (dry run)" if dry_run else "",
        extra={"tenant_id": tenant_id},
    )
    return summary


def _module_checks(rows: list[ImportRow], tenant_id: str) -> tuple[list[ImportRow], list[RowRejection]]:
    """Run the modules' own validators on each row, so none of them rejects it mid-write."""
    kept, rejections = [], []
    for row in rows:
        try:
            customer_validate(
                tenant_id=tenant_id,
                external_id=row.external_id,
                name=row.name,
                email=row.email,
                currency=row.currency,
                collection_method=row.collection_method,
                payment_terms_days=row.payment_terms_days,
            )
        except ArError as error:
            rejections.append(RowRejection(row.line_number, row.external_id, str(error)))
            continue
        kept.append(row)
    return kept, rejections


def _billed_start_checks(
    rows: list[ImportRow], tenant_id: str, cutover: date | None
) -> tuple[list[ImportRow], list[RowRejection]]:
    """Reject rows that would move the start date of a subscription that has billed periods.

    The subscriptions module rejects that change too, but only after the
    row's customer and payment method were written. Checking first keeps the
    row whole and makes a dry run report it.
    """
    billed_starts = billed_start_dates_for_imports(
        tenant_id=tenant_id, external_ids=[row.external_id for row in rows]
    )
    kept, rejections = [], []
    for row in rows:
        billed_start = billed_starts.get(row.external_id)
        new_start = _billing_start(row, cutover)
        if billed_start is not None and billed_start != new_start:
            rejections.append(
                RowRejection(
                    row.line_number,
                    row.external_id,
                    f"subscription {row.external_id!r} is billed from {billed_start.isoformat()}, and this "
                    f"import would move its start to {new_start.isoformat()}; import with the --as-of "
                    "(and --backfill choice) of the first import",
                )
            )
            continue
        kept.append(row)
    return kept, rejections


class _TrialRollback(Exception):
    """Raised to roll back the trial writes of ``_subscription_trial``."""


def _subscription_trial(
    rows: list[ImportRow], tenant_id: str, cutover: date | None, now: datetime
) -> tuple[list[ImportRow], list[RowRejection]]:
    """Write every plan and subscription in transactions that are rolled back; reject the rows that fail.

    The subscriptions module also checks stored state that no row rule can
    see: an inactive plan, a plan whose currency or interval is in use, a
    canceled subscription. Running its own services here makes the dry run
    report those rows, and rejects them before their customer and payment
    method are written. A new customer gets a placeholder id, because the
    subscriptions module checks only that the id is a UUID.

    NOTE: the trial locks the tenant's plans and imported subscriptions until
    it rolls back, so a bill run started meanwhile waits for it.
    """
    plan_failures: dict[str, str] = {}
    row_failures: dict[int, str] = {}
    try:
        with transaction.atomic(using="default"), transaction.atomic(using=SUBSCRIPTIONS_ALIAS):
            # The tenant's row is rolled back too; a new tenant's plans need it.
            tenant_ensure(tenant_id=tenant_id, now=now)
            # Rows sharing a plan code carry the same terms, checked by rows_validate.
            for terms in {row.plan.code: row.plan for row in rows}.values():
                try:
                    with transaction.atomic(using=SUBSCRIPTIONS_ALIAS):
                        _plan_upsert(terms, tenant_id, now)
                except SubscriptionsError as error:
                    plan_failures[terms.code] = f"plan {terms.code!r} was not saved: {error}"

            for row in rows:
                if row.plan.code in plan_failures:
                    continue
                customer_id = customer_id_for_external_id(tenant_id=tenant_id, external_id=row.external_id)
                try:
                    with transaction.atomic(using=SUBSCRIPTIONS_ALIAS):
                        _subscription_upsert(row, tenant_id, customer_id or str(uuid.uuid4()), cutover, now)
                except SubscriptionsError as error:
                    row_failures[row.line_number] = f"subscription was not saved: {error}"
            raise _TrialRollback
    except _TrialRollback:
        pass

    kept, rejections = [], []
    for row in rows:
        reason = plan_failures.get(row.plan.code) or row_failures.get(row.line_number)
        if reason is None:
            kept.append(row)
        else:
            rejections.append(RowRejection(row.line_number, row.external_id, reason))
    return kept, rejections


def _plan_upsert(terms: PlanTerms, tenant_id: str, now: datetime) -> bool:
    """Upsert the plan ``terms`` describe; return whether it was created."""
    _, created = plan_upsert(
        tenant_id=tenant_id,
        code=terms.code,
        name=terms.name,
        amount_minor=terms.amount_minor,
        currency=terms.currency,
        interval=terms.interval,
        interval_count=terms.interval_count,
        now=now,
    )
    return created


def _subscription_upsert(
    row: ImportRow, tenant_id: str, customer_id: str, cutover: date | None, now: datetime
) -> bool:
    """Upsert the row's subscription; return whether it was created."""
    _, created = subscription_upsert_imported(
        tenant_id=tenant_id,
        external_id=row.external_id,
        customer_id=customer_id,
        plan_code=row.plan.code,
        start_date=_billing_start(row, cutover),
        quantity=row.quantity,
        price_override_minor=row.price_override_minor,
        now=now,
    )
    return created


def _plans_write(rows: list[ImportRow], tenant_id: str, now: datetime, summary: ImportSummary) -> list[ImportRow]:
    """Upsert each distinct plan once; reject the rows of a plan the module rejects."""
    plans: dict[str, PlanTerms] = {}
    for row in rows:
        plans.setdefault(row.plan.code, row.plan)

    failed: dict[str, str] = {}
    for terms in plans.values():
        try:
            created = _plan_upsert(terms, tenant_id, now)
        except SubscriptionsError as error:
            failed[terms.code] = f"plan {terms.code!r} was not saved: {error}"
            continue
        summary.plans_created += created
        summary.plans_existing += not created

    kept = []
    for row in rows:
        if row.plan.code in failed:
            summary.rejections.append(RowRejection(row.line_number, row.external_id, failed[row.plan.code]))
        else:
            kept.append(row)
    return kept


def _rows_write(
    rows: list[ImportRow],
    tenant_id: str,
    cutover: date | None,
    now: datetime,
    summary: ImportSummary,
    progress: ProgressCallback | None,
) -> None:
    for position, row in enumerate(rows, start=1):
        step = "customer"
        try:
            customer, _ = customer_upsert(
                tenant_id=tenant_id,
                external_id=row.external_id,
                name=row.name,
                email=row.email,
                currency=row.currency,
                collection_method=row.collection_method,
                payment_terms_days=row.payment_terms_days,
                now=now,
            )
            customer_id = str(customer.id)
            if row.payment_token:
                step = "payment method"
                payment_method_upsert(
                    tenant_id=tenant_id,
                    customer_id=customer_id,
                    token=row.payment_token,
                    kind=row.payment_kind,
                    make_default=True,
                    now=now,
                )
            step = "subscription"
            created = _subscription_upsert(row, tenant_id, customer_id, cutover, now)
        except _MODULE_ERRORS as error:
            rejection = RowRejection(row.line_number, row.external_id, f"{step} was not saved: {error}")
            summary.rejections.append(rejection)
            if step != "customer":
                # NOTE: modules live in separate databases, so one row's steps
                # cannot share a transaction. _subscription_trial ran these
                # services before the first write, so only a change made by
                # someone else since then gets here. Every step is an upsert,
                # so importing the file again after the fix completes the row.
                summary.partially_written.append(rejection)
            logger.warning(
                "Import row on line %s rejected at the %s step: %s", row.line_number, step, error,
                extra={"tenant_id": tenant_id, "external_id": row.external_id},
            )
        else:
            summary.imported += created
            summary.updated += not created

        if progress is not None and (position % PROGRESS_EVERY_ROWS == 0 or position == len(rows)):
            progress(position, len(rows))


def _billing_start(row: ImportRow, cutover: date | None) -> date:
    """Return the start date to import: the row's own, or its first period start on or after ``cutover``.

    NOTE: subscription_upsert_imported has no argument for periods an old
    system already billed, so the cutover start date replaces the customer's
    real start date in the subscriptions module. An anchor on the 29th to 31st
    that a short month clamped keeps the clamped day from then on.
    """
    if cutover is None:
        return row.start_date
    return first_period_start_on_or_after(row.start_date, row.plan.interval, row.plan.interval_count, cutover)

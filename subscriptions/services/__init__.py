"""Write operations of the subscriptions module; each runs in one transaction on the
``subscriptions`` alias and appends its events to the module's outbox in it."""

from subscriptions.services.bill_runs import BILL_RUN_BATCH_SIZE, BillRunSummary, bill_run_execute
from subscriptions.services.common import billing_date_validate
from subscriptions.services.invoices import (
    subscription_invoice_open,
    subscription_invoice_update_status,
)
from subscriptions.services.lifecycle import (
    subscription_cancel,
    subscription_change_plan,
    subscription_create,
    subscription_upsert_imported,
)
from subscriptions.services.plans import plan_set_active, plan_upsert

__all__ = [
    "BILL_RUN_BATCH_SIZE",
    "BillRunSummary",
    "bill_run_execute",
    "billing_date_validate",
    "plan_set_active",
    "plan_upsert",
    "subscription_cancel",
    "subscription_change_plan",
    "subscription_create",
    "subscription_invoice_open",
    "subscription_invoice_update_status",
    "subscription_upsert_imported",
]

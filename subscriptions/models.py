import uuid

from django.db import models

from eventbus.models import AbstractDeadLetter, AbstractOutboxEvent, AbstractProcessedEvent


class OutboxEvent(AbstractOutboxEvent):
    pass


class ProcessedEvent(AbstractProcessedEvent):
    pass


class DeadLetter(AbstractDeadLetter):
    pass


class PlanInterval(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    YEAR = "year", "Year"


class Plan(models.Model):
    """A price and billing interval a tenant sells; ``code`` is the tenant's own key for it."""

    tenant_id = models.CharField(max_length=63)
    code = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    # Price of one unit for one period, in minor units of ``currency``.
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    interval = models.CharField(max_length=8, choices=PlanInterval.choices)
    interval_count = models.PositiveIntegerField(default=1)
    # A new subscription's first period starts this many days after its start date.
    trial_days = models.PositiveIntegerField(default=0)
    # An inactive plan keeps billing its subscriptions but takes no new ones.
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["tenant_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "code"], name="subscriptions_plan_code_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(amount_minor__gte=0), name="subscriptions_plan_amount_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(interval_count__gte=1), name="subscriptions_plan_interval_count_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(interval__in=PlanInterval.values), name="subscriptions_plan_interval_known"
            ),
        ]

    def __str__(self):
        return f"{self.code} ({self.tenant_id})"


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"


class Subscription(models.Model):
    """A customer's subscription to a plan, billed in advance for each period.

    Periods start at ``billing_anchor_date + k * interval`` (see
    ``subscriptions.periods``). ``version`` increases with every change and is
    the ``aggregate_version`` of the events about this subscription.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = models.CharField(max_length=63)
    # The id the subscription had in the system it was imported from. NULL,
    # not "", for none: the unique constraint below skips NULLs.
    external_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    # The AR customer's UUID; no foreign key, because customers live in the ar module.
    customer_id = models.CharField(max_length=36)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    quantity = models.PositiveIntegerField(default=1)
    # A negotiated unit price in minor units that replaces the plan's amount_minor.
    price_override_minor = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices)
    billing_anchor_date = models.DateField()
    started_on = models.DateField()
    trial_end_date = models.DateField(null=True, blank=True)
    # The last billed period. Before the first bill it is the trial, or the
    # first period when there is no trial.
    current_period_start = models.DateField()
    current_period_end = models.DateField()
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # Service ends on this date: no period starting on or after it is billed.
    ends_on = models.DateField(null=True, blank=True)
    # A plan change waiting for its first period, which starts on pending_plan_effective_on.
    pending_plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    pending_plan_effective_on = models.DateField(null=True, blank=True)
    version = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["tenant_id", "status"], name="subs_sub_tenant_status"),
            models.Index(fields=["tenant_id", "customer_id"], name="subs_sub_customer"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="subscriptions_external_id_per_tenant",
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__gte=1), name="subscriptions_sub_quantity_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(price_override_minor__isnull=True)
                | models.Q(price_override_minor__gte=0),
                name="subscriptions_sub_price_override_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=SubscriptionStatus.values),
                name="subscriptions_sub_status_known",
            ),
            models.CheckConstraint(
                condition=models.Q(pending_plan__isnull=True, pending_plan_effective_on__isnull=True)
                | models.Q(pending_plan__isnull=False, pending_plan_effective_on__isnull=False),
                name="subscriptions_sub_pending_plan_with_date",
            ),
        ]

    def __str__(self):
        return f"{self.id} ({self.status})"

    @property
    def unit_amount_minor(self) -> int:
        """The unit price billed for the next period: the override, else the plan's price."""
        if self.price_override_minor is not None:
            return self.price_override_minor
        return self.plan.amount_minor


class BillRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class BillRun(models.Model):
    """One execution of the bill run, with its counts and timing.

    A dry run is recorded too, marked ``dry_run``, so its preview can be
    compared with the real run; it bills nothing.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # NULL when the run covered every tenant.
    tenant_id = models.CharField(max_length=63, null=True, blank=True)  # noqa: DJ001
    as_of = models.DateField()
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=BillRunStatus.choices, default=BillRunStatus.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    subscriptions_seen = models.PositiveIntegerField(default=0)
    periods_billed = models.PositiveIntegerField(default=0)
    # Subscriptions that billed nothing, counted by reason: {"trialing": 3, ...}.
    skipped = models.JSONField(default=dict, blank=True)
    # Total of the billed periods per currency, in minor units: {"USD": 129900}.
    amount_minor_by_currency = models.JSONField(default=dict, blank=True)
    elapsed_seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        kind = "dry run" if self.dry_run else "bill run"
        return f"{kind} {self.id} as of {self.as_of} ({self.status})"


class BillingPeriod(models.Model):
    """One billed period of one subscription; the unique constraint bills a period once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = models.CharField(max_length=63)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="billing_periods")
    bill_run = models.ForeignKey(BillRun, on_delete=models.PROTECT, related_name="billing_periods")
    period_start = models.DateField()
    # Exclusive: the first day of the next period.
    period_end = models.DateField()
    plan_code = models.CharField(max_length=64)
    plan_name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_amount_minor = models.BigIntegerField()
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=300)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["subscription_id", "period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period_start"], name="subscriptions_period_billed_once"
            ),
            models.CheckConstraint(
                condition=models.Q(period_end__gt=models.F("period_start")),
                name="subscriptions_period_end_after_start",
            ),
            models.CheckConstraint(
                condition=models.Q(amount_minor__gte=0), name="subscriptions_period_amount_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.subscription_id} [{self.period_start}, {self.period_end})"


class SubscriptionInvoiceStatus(models.TextChoices):
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"
    VOIDED = "voided", "Voided"


# Invoices in these statuses keep their subscription past due.
DELINQUENT_INVOICE_STATUSES = (SubscriptionInvoiceStatus.PAYMENT_FAILED, SubscriptionInvoiceStatus.UNCOLLECTIBLE)


class SubscriptionInvoice(models.Model):
    """This module's copy of the state of one AR invoice for a subscription, kept from AR's events.

    The rows show whether a subscription has an invoice still unpaid after
    collection failed, and map an invoice id to its subscription for payment
    events, which carry no subscription id.
    """

    tenant_id = models.CharField(max_length=63)
    invoice_id = models.CharField(max_length=36, unique=True)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="invoices")
    billing_period = models.ForeignKey(
        BillingPeriod, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    status = models.CharField(max_length=16, choices=SubscriptionInvoiceStatus.choices)
    # occurred_at of the event that set ``status``; an older event is stale.
    status_changed_at = models.DateTimeField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["subscription", "status"], name="subs_invoice_status")]

    def __str__(self):
        return f"invoice {self.invoice_id} ({self.status})"

"""Payment methods, payments and their attempts, the simulated gateway's ledger,
and the module's outbox, inbox and dead-letter tables.

Customers and invoices belong to AR, so they are referred to by UUID strings.
"""

import uuid

from django.db import models

from eventbus.models import AbstractDeadLetter, AbstractOutboxEvent, AbstractProcessedEvent


class OutboxEvent(AbstractOutboxEvent):
    pass


class ProcessedEvent(AbstractProcessedEvent):
    pass


class DeadLetter(AbstractDeadLetter):
    pass


class PaymentMethodKind(models.TextChoices):
    CARD = "card", "Card"
    BANK_DEBIT = "bank_debit", "Bank debit"


class PaymentMethod(models.Model):
    """A customer's stored means of payment: a gateway token, never card or account numbers."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = models.CharField(max_length=63)
    customer_id = models.CharField(max_length=36)
    token = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=PaymentMethodKind.choices)
    # The method collections charge; at most one per customer.
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["customer_id", "-is_default", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["customer_id", "token"], name="payments_method_token_once"),
            models.UniqueConstraint(
                fields=["customer_id"],
                condition=models.Q(is_default=True),
                name="payments_method_one_default",
            ),
        ]
        indexes = [models.Index(fields=["tenant_id", "customer_id"], name="payments_method_customer")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.token} of customer {self.customer_id}"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


FINAL_PAYMENT_STATUSES = (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)


class Payment(models.Model):
    """The collection of one invoice: the amount AR requested and the state of charging it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = models.CharField(max_length=63)
    invoice_id = models.CharField(max_length=36)
    invoice_number = models.CharField(max_length=64)
    customer_id = models.CharField(max_length=36)
    # Copied from the collection request, so charging never reads AR's tables.
    amount_minor = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    # AR's key for this invoice's collection; attempt n charges with
    # "<idempotency_key>:attempt-<n>".
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField(null=True, blank=True)
    # When the retry runner charges next: the creation time for a pending
    # payment, the scheduled retry for retry_scheduled, otherwise empty.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    # The collection request's trace, continued by every event of this payment.
    correlation_id = models.UUIDField()
    request_event_id = models.UUIDField(null=True, blank=True)
    version = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["invoice_id"], name="payments_payment_once_per_invoice"),
            models.CheckConstraint(condition=models.Q(amount_minor__gt=0), name="payments_payment_amount_positive"),
            models.CheckConstraint(
                condition=~models.Q(status="retry_scheduled") | models.Q(next_attempt_at__isnull=False),
                name="payments_payment_retry_has_time",
            ),
        ]
        indexes = [
            # The retry runner's query: payments waiting for their next attempt.
            models.Index(
                fields=["next_attempt_at"],
                name="payments_payment_waiting",
                condition=models.Q(status__in=["pending", "retry_scheduled"]),
            ),
            models.Index(fields=["tenant_id", "status"], name="payments_payment_tenant_status"),
        ]

    def __str__(self):
        return f"payment for invoice {self.invoice_number or self.invoice_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_PAYMENT_STATUSES


class PaymentAttemptStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class PaymentAttempt(models.Model):
    """One charge of a payment at the gateway, numbered from 1.

    The row is committed in ``processing`` before the gateway is called, so a
    crash leaves a record that the retry runner resumes with the same key.
    """

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="attempts")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=PaymentAttemptStatus.choices, default=PaymentAttemptStatus.PROCESSING
    )
    # Empty when the customer had no payment method, so nothing was charged.
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.PROTECT, related_name="attempts", null=True, blank=True
    )
    idempotency_key = models.CharField(max_length=255, unique=True)
    gateway_reference = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)
    retryable = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["payment", "number"]
        constraints = [
            models.UniqueConstraint(fields=["payment", "number"], name="payments_attempt_number_once"),
            models.UniqueConstraint(
                fields=["payment"],
                condition=models.Q(status="processing"),
                name="payments_attempt_one_processing",
            ),
        ]

    def __str__(self):
        return f"attempt {self.number} of {self.payment_id} ({self.status})"


class SimulatedCharge(models.Model):
    """A charge the simulated gateway recorded, one per idempotency key.

    Only ``payments.gateways.simulated`` writes this table. It replaces
    the ledger that a real gateway keeps on its side.
    """

    idempotency_key = models.CharField(max_length=255, unique=True)
    reference = models.CharField(max_length=64, unique=True)
    customer_id = models.CharField(max_length=36)
    token = models.CharField(max_length=255)
    amount_minor = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    succeeded = models.BooleanField()
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)
    retryable = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["customer_id", "token"], name="payments_simcharge_customer")]

    def __str__(self):
        outcome = "succeeded" if self.succeeded else f"declined ({self.failure_code})"
        return f"simulated charge {self.reference} {outcome}"

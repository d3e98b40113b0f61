"""Customers, invoices and their lines, the credit and payment ledgers, numbering.

Amounts are integer minor units of the row's ``currency`` (ISO 4217); see
``ar.totals`` for how invoice totals are derived. Other modules refer to
these rows by UUID string only.
"""

import uuid

from django.db import models
from django.db.models import F, Q, Sum

from eventbus.models import AbstractDeadLetter, AbstractOutboxEvent, AbstractProcessedEvent


class OutboxEvent(AbstractOutboxEvent):
    pass


class ProcessedEvent(AbstractProcessedEvent):
    pass


class DeadLetter(AbstractDeadLetter):
    pass


class CollectionMethod(models.TextChoices):
    # The gateway charges the saved payment method when the invoice is finalized.
    CHARGE_AUTOMATICALLY = "charge_automatically", "Charge automatically"
    # The customer is emailed the invoice and pays it by the due date.
    SEND_INVOICE = "send_invoice", "Send invoice"


class Customer(models.Model):
    """A tenant's customer, identified in the tenant's own system by ``external_id``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = models.CharField(max_length=63)
    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254)
    # The currency the customer is usually billed in; invoices carry their own.
    currency = models.CharField(max_length=3)
    collection_method = models.CharField(
        max_length=32, choices=CollectionMethod.choices, default=CollectionMethod.CHARGE_AUTOMATICALLY
    )
    # Days between an invoice's issue date and its due date.
    payment_terms_days = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["tenant_id", "external_id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "external_id"], name="ar_customer_external_id_per_tenant"),
        ]

    def __str__(self):
        return f"{self.name} ({self.tenant_id}/{self.external_id})"


class CreditReason(models.TextChoices):
    GRANTED = "granted", "Granted by an operator"
    OVERPAYMENT = "overpayment", "Payment above the amount due"
    PAYMENT_ON_CLOSED_INVOICE = "payment_on_closed_invoice", "Payment for a paid or void invoice"
    RETURNED_FROM_VOIDED_INVOICE = "returned_from_voided_invoice", "Returned when an invoice was voided"
    APPLIED_TO_INVOICE = "applied_to_invoice", "Applied to an invoice"


class CreditEntryQuerySet(models.QuerySet):
    def balances(self) -> dict[str, int]:
        """Return the credit balance per currency of the entries in this query set."""
        rows = self.values("currency").annotate(balance=Sum("amount_minor")).order_by("currency")
        return {row["currency"]: row["balance"] for row in rows}

    def balance(self, currency: str) -> int:
        """Return the credit balance in ``currency`` of the entries in this query set."""
        return self.filter(currency=currency).aggregate(balance=Sum("amount_minor"))["balance"] or 0


class CustomerCreditEntry(models.Model):
    """One entry of a customer's credit ledger, which is only appended to.

    A positive amount adds credit and a negative amount applies it to an
    invoice. The balance per currency is the sum of the entries. Services
    lock the customer row while they read and spend it, so it never goes
    negative.
    """

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_entries")
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()
    reason = models.CharField(max_length=40, choices=CreditReason.choices)
    invoice = models.ForeignKey(
        "Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="credit_entries"
    )
    # Free text an operator gives with a grant.
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()

    objects = CreditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "customer credit entries"
        constraints = [
            models.CheckConstraint(condition=~Q(amount_minor=0), name="ar_credit_entry_not_zero"),
        ]

    def __str__(self):
        return f"{self.amount_minor:+d} {self.currency} ({self.reason})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("customer credit entries are never changed; append a correcting entry instead")
        super().save(*args, **kwargs)


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"


class Invoice(models.Model):
    """An invoice of one customer, in one currency.

    A draft has no number. Finalizing allocates the tenant's next number and
    moves it to open, in the same transaction that creates it when it comes
    from a billing period.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = models.CharField(max_length=63)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    # Ids of the subscriptions module's rows; null for an invoice made by hand.
    subscription_id = models.UUIDField(null=True, blank=True)
    billing_period_id = models.UUIDField(null=True, blank=True)
    # "<TENANT ID IN CAPITALS>-<sequence, at least 6 digits>", see ar.services.numbering.
    # Null, not "", until finalized, so drafts do not collide in the unique constraint.
    number = models.CharField(max_length=80, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    currency = models.CharField(max_length=3)
    subtotal_minor = models.BigIntegerField(default=0)
    credit_applied_minor = models.BigIntegerField(default=0)
    total_minor = models.BigIntegerField(default=0)
    amount_paid_minor = models.BigIntegerField(default=0)
    amount_due_minor = models.BigIntegerField(default=0)
    issued_on = models.DateField(null=True, blank=True)
    due_on = models.DateField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    marked_uncollectible_at = models.DateTimeField(null=True, blank=True)
    # The aggregate_version of the invoice's events; increases with every change.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["billing_period_id"], name="ar_invoice_once_per_billing_period"),
            models.UniqueConstraint(fields=["tenant_id", "number"], name="ar_invoice_number_per_tenant"),
            models.CheckConstraint(
                condition=Q(status=InvoiceStatus.DRAFT) | Q(number__isnull=False),
                name="ar_invoice_number_once_finalized",
            ),
            models.CheckConstraint(
                condition=Q(subtotal_minor__gte=0)
                & Q(credit_applied_minor__gte=0)
                & Q(amount_paid_minor__gte=0)
                & Q(amount_due_minor__gte=0),
                name="ar_invoice_amounts_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(total_minor=F("subtotal_minor"))
                & Q(credit_applied_minor__lte=F("subtotal_minor"))
                & Q(amount_due_minor=F("total_minor") - F("credit_applied_minor") - F("amount_paid_minor")),
                name="ar_invoice_totals_consistent",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant_id", "status"], name="ar_invoice_tenant_status"),
        ]

    def __str__(self):
        return self.number or f"draft {self.id}"


class InvoiceLine(models.Model):
    """A line item of an invoice; ``period_start``/``period_end`` is the half-open period billed."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    # Order of the line on the invoice, from 1.
    position = models.PositiveIntegerField()
    description = models.CharField(max_length=500)
    quantity = models.PositiveIntegerField()
    unit_amount_minor = models.BigIntegerField()
    amount_minor = models.BigIntegerField()
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="ar_invoice_line_position"),
            models.CheckConstraint(
                condition=Q(amount_minor=F("quantity") * F("unit_amount_minor")),
                name="ar_invoice_line_amount",
            ),
            models.CheckConstraint(condition=Q(unit_amount_minor__gte=0), name="ar_invoice_line_unit_amount"),
        ]

    def __str__(self):
        return self.description


class PaymentSource(models.TextChoices):
    GATEWAY = "gateway", "Payment gateway"
    OFFLINE = "offline", "Recorded offline"


class PaymentApplication(models.Model):
    """One payment received for an invoice, and how it was split.

    ``applied_minor`` settled the invoice. ``credited_minor`` went to the
    customer's credit ledger: the part above the amount due, or all of it
    when the invoice was already paid or void. ``reference`` is the payments
    module's payment id for gateway payments, and the operator's reference
    (a bank transfer or cheque number) for offline ones.
    """

    tenant_id = models.CharField(max_length=63)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payment_applications")
    source = models.CharField(max_length=16, choices=PaymentSource.choices)
    reference = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()
    applied_minor = models.BigIntegerField()
    credited_minor = models.BigIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            # The same payment is never applied twice.
            models.UniqueConstraint(
                fields=["tenant_id", "source", "reference"], name="ar_payment_applied_once"
            ),
            models.CheckConstraint(
                condition=Q(amount_minor__gt=0)
                & Q(applied_minor__gte=0)
                & Q(credited_minor__gte=0)
                & Q(amount_minor=F("applied_minor") + F("credited_minor")),
                name="ar_payment_split_consistent",
            ),
        ]

    def __str__(self):
        return f"{self.source} {self.reference}"


class InvoiceNumberSequence(models.Model):
    """The last invoice number a tenant used; its row is locked while a number is allocated."""

    tenant_id = models.CharField(max_length=63, primary_key=True)
    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.tenant_id}: {self.last_number}"

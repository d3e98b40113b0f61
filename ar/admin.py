"""Admin pages for customers, invoices and ar's event tables.

Invoices, their lines and both ledgers are read-only here: amounts, states
and numbers change only through the ar services, which the two invoice
actions call. Customers are created and edited through ``customer_upsert``.
Amounts show in major units with their currency ("29.85 USD").
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone

from ar.errors import ArError
from ar.models import (
    Customer,
    CustomerCreditEntry,
    DeadLetter,
    Invoice,
    InvoiceLine,
    OutboxEvent,
    PaymentApplication,
    ProcessedEvent,
)
from ar.selectors import customer_credit_balances
from ar.services import customer_upsert, customer_validate, invoice_mark_uncollectible, invoice_void
from billing.money import InvalidMoney, format_major
from eventbus.admin import DeadLetterAdmin, OutboxEventAdmin, ProcessedEventAdmin, ServiceOnlyAdmin

admin.site.register(OutboxEvent, OutboxEventAdmin)
admin.site.register(ProcessedEvent, ProcessedEventAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)


def money(amount_minor: int | None, currency: str) -> str:
    """Return ``amount_minor`` as "29.85 USD", or the raw minor units when the currency is unknown."""
    if amount_minor is None:
        return "-"
    try:
        return format_major(amount_minor, currency)
    except InvalidMoney:
        return f"{amount_minor} (minor units of {currency!r})"


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CreditEntryInline(ReadOnlyInline):
    model = CustomerCreditEntry
    fk_name = "customer"
    fields = ["created_at", "amount", "reason", "invoice", "note"]
    readonly_fields = fields

    @admin.display(description="amount")
    def amount(self, entry: CustomerCreditEntry) -> str:
        return money(entry.amount_minor, entry.currency)


class CustomerForm(forms.ModelForm):
    """Validates with the same rules as ``customer_upsert``, which saves the customer."""

    class Meta:
        model = Customer
        fields = ["tenant_id", "external_id", "name", "email", "currency", "collection_method", "payment_terms_days"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        identity = self.instance if self.instance.pk and not self.instance._state.adding else None
        try:
            customer_validate(
                tenant_id=identity.tenant_id if identity else cleaned["tenant_id"],
                external_id=identity.external_id if identity else cleaned["external_id"],
                name=cleaned["name"],
                email=cleaned["email"],
                currency=cleaned["currency"],
                collection_method=cleaned["collection_method"],
                payment_terms_days=cleaned["payment_terms_days"],
            )
        except ArError as error:
            raise ValidationError(str(error), code=error.code) from None
        return cleaned

    def validate_unique(self):
        # customer_upsert updates the existing customer with this external id
        # instead of rejecting a duplicate.
        pass


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    form = CustomerForm
    list_display = ["name", "email", "tenant_id", "external_id", "currency", "collection_method", "payment_terms_days"]
    list_filter = ["tenant_id", "collection_method", "currency"]
    search_fields = ["name", "email", "external_id", "=id"]
    ordering = ["tenant_id", "name"]
    inlines = [CreditEntryInline]

    def get_readonly_fields(self, request, obj=None):
        # The tenant and external id identify the customer; editing them
        # would create another customer.
        if obj is None:
            return ["id", "created_at", "updated_at"]
        return ["tenant_id", "external_id", "id", "credit_balance", "created_at", "updated_at"]

    def has_delete_permission(self, request, obj=None):
        # No service deletes a customer: invoices, credit entries and other
        # modules' subscriptions and payments refer to it by id.
        return False

    @admin.display(description="credit balance")
    def credit_balance(self, customer: Customer) -> str:
        balances = sorted(customer_credit_balances(customer_id=str(customer.id)).items())
        return ", ".join(money(amount, currency) for currency, amount in balances) or "none"

    def save_model(self, request, obj, form, change):
        customer, _ = customer_upsert(
            tenant_id=obj.tenant_id,
            external_id=obj.external_id,
            name=obj.name,
            email=obj.email,
            currency=obj.currency,
            collection_method=obj.collection_method,
            payment_terms_days=obj.payment_terms_days,
            now=timezone.now(),
        )
        # The admin logs and redirects to ``obj``, so it must be the saved row.
        obj.id = customer.id
        obj.created_at = customer.created_at
        obj.updated_at = customer.updated_at
        obj._state.adding = False
        obj._state.db = customer._state.db


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ["position", "description", "quantity", "unit_amount", "amount", "period_start", "period_end"]
    readonly_fields = fields

    @admin.display(description="unit amount")
    def unit_amount(self, line: InvoiceLine) -> str:
        return money(line.unit_amount_minor, line.invoice.currency)

    @admin.display(description="amount")
    def amount(self, line: InvoiceLine) -> str:
        return money(line.amount_minor, line.invoice.currency)


class PaymentApplicationInline(ReadOnlyInline):
    model = PaymentApplication
    fields = ["created_at", "source", "reference", "amount", "applied", "credited"]
    readonly_fields = fields

    @admin.display(description="amount received")
    def amount(self, payment: PaymentApplication) -> str:
        return money(payment.amount_minor, payment.currency)

    @admin.display(description="applied to invoice")
    def applied(self, payment: PaymentApplication) -> str:
        return money(payment.applied_minor, payment.currency)

    @admin.display(description="added to credit")
    def credited(self, payment: PaymentApplication) -> str:
        return money(payment.credited_minor, payment.currency)


@admin.register(Invoice)
class InvoiceAdmin(ServiceOnlyAdmin):
    list_display = [
        "number", "customer", "status", "total", "amount_due", "issued_on", "due_on", "tenant_id",
    ]
    list_filter = ["status", "tenant_id", "issued_on", "currency"]
    search_fields = [
        "number", "customer__external_id", "customer__name", "customer__email",
        "=id", "=billing_period_id", "=subscription_id",
    ]
    list_select_related = ["customer"]
    date_hierarchy = "issued_on"
    inlines = [InvoiceLineInline, PaymentApplicationInline]
    actions = ["void_invoices", "mark_invoices_uncollectible"]
    fields = [
        "id", "tenant_id", "number", "status", "customer", "currency",
        "subtotal", "credit_applied", "total", "amount_paid", "amount_due",
        "issued_on", "due_on", "finalized_at", "paid_at", "voided_at", "marked_uncollectible_at",
        "subscription_id", "billing_period_id", "version", "created_at", "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="subtotal")
    def subtotal(self, invoice: Invoice) -> str:
        return money(invoice.subtotal_minor, invoice.currency)

    @admin.display(description="credit applied")
    def credit_applied(self, invoice: Invoice) -> str:
        return money(invoice.credit_applied_minor, invoice.currency)

    @admin.display(description="total", ordering="total_minor")
    def total(self, invoice: Invoice) -> str:
        return money(invoice.total_minor, invoice.currency)

    @admin.display(description="amount paid")
    def amount_paid(self, invoice: Invoice) -> str:
        return money(invoice.amount_paid_minor, invoice.currency)

    @admin.display(description="amount due", ordering="amount_due_minor")
    def amount_due(self, invoice: Invoice) -> str:
        return money(invoice.amount_due_minor, invoice.currency)

    @admin.action(description="Void selected open invoices", permissions=["service"])
    def void_invoices(self, request, queryset):
        def void(invoice: Invoice) -> str:
            voided = invoice_void(invoice_id=str(invoice.id), now=timezone.now())
            return f"Invoice {voided.number} voided."

        return self.confirm_then_run_each(
            request,
            queryset,
            "Void the selected invoices? A void invoice cannot be reopened. The credit applied to it "
            "and any partial payments return to the customer's credit balance.",
            void,
            ArError,
        )

    @admin.action(description="Mark selected open invoices uncollectible", permissions=["service"])
    def mark_invoices_uncollectible(self, request, queryset):
        def mark(invoice: Invoice) -> str:
            marked = invoice_mark_uncollectible(invoice_id=str(invoice.id), now=timezone.now())
            return f"Invoice {marked.number} marked uncollectible."

        return self.confirm_then_run_each(
            request,
            queryset,
            "Mark the selected invoices uncollectible? They are written off, and a later payment "
            "still settles them.",
            mark,
            ArError,
        )

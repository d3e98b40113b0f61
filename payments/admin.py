"""Admin pages: payment methods (edited through payment_method_upsert), payments with
their attempts (read-only) and the module's event tables."""

from django import forms
from django.contrib import admin
from django.utils import timezone

from billing.money import format_major
from eventbus.admin import DeadLetterAdmin, OutboxEventAdmin, ProcessedEventAdmin, ServiceOnlyAdmin
from payments.errors import InvalidPaymentMethod
from payments.models import (
    DeadLetter,
    OutboxEvent,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    ProcessedEvent,
)
from payments.services import payment_method_upsert, payment_method_validate

admin.site.register(OutboxEvent, OutboxEventAdmin)
admin.site.register(ProcessedEvent, ProcessedEventAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)


class PaymentMethodForm(forms.ModelForm):
    # Not the model field: payment_method_upsert moves the default from the
    # customer's previous default method, which model validation would reject.
    make_default = forms.BooleanField(
        required=False, initial=True, help_text="Charge this method for the customer's collections."
    )

    class Meta:
        model = PaymentMethod
        fields = ["tenant_id", "customer_id", "token", "kind"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["make_default"].initial = self.instance.is_default

    def clean(self):
        cleaned_data = super().clean()
        values = {
            name: cleaned_data.get(name, getattr(self.instance, name))
            for name in ("tenant_id", "customer_id", "token", "kind")
        }
        if all(values.values()):
            try:
                payment_method_validate(**values)
            except InvalidPaymentMethod as error:
                raise forms.ValidationError(str(error)) from error
        return cleaned_data

    def validate_unique(self):
        # payment_method_upsert updates a stored token instead of failing on it.
        pass


@admin.register(PaymentMethod)
class PaymentMethodAdmin(admin.ModelAdmin):
    form = PaymentMethodForm
    list_display = ["customer_id", "kind", "token", "is_default", "tenant_id", "created_at", "updated_at"]
    list_filter = ["kind", "is_default", "tenant_id"]
    search_fields = ["customer_id", "token", "=id"]
    readonly_fields = ["is_default", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        # A stored method keeps its customer and token; add a new one instead.
        return [*self.readonly_fields, "tenant_id", "customer_id", "token"]

    def get_fields(self, request, obj=None):
        fields = ["tenant_id", "customer_id", "token", "kind", "make_default"]
        return fields if obj is None else [*fields, "is_default", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        method, _ = payment_method_upsert(
            tenant_id=obj.tenant_id,
            customer_id=obj.customer_id,
            token=obj.token,
            kind=form.cleaned_data["kind"],
            make_default=form.cleaned_data["make_default"],
            now=timezone.now(),
        )
        obj.pk = method.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        # Attempts keep a reference to the method they charged.
        return False


class PaymentAttemptInline(admin.TabularInline):
    model = PaymentAttempt
    fields = [
        "number", "status", "payment_method", "gateway_reference", "failure_code",
        "failure_message", "retryable", "started_at", "finished_at",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["number"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Payment)
class PaymentAdmin(ServiceOnlyAdmin):
    """Payments come from AR's collection requests only, and change only through the payment services."""

    inlines = [PaymentAttemptInline]
    list_display = [
        "invoice_number", "customer_id", "amount", "status", "attempt_count", "first_failed_at",
        "next_attempt_at", "created_at", "tenant_id",
    ]
    list_filter = ["status", "currency", "tenant_id", "created_at"]
    search_fields = ["invoice_id", "invoice_number", "customer_id", "idempotency_key", "=id"]
    date_hierarchy = "created_at"
    fields = [
        "id", "tenant_id", "invoice_id", "invoice_number", "customer_id", "amount", "status",
        "attempt_count", "first_failed_at", "next_attempt_at", "succeeded_at", "failed_at",
        "idempotency_key", "correlation_id", "request_event_id", "version", "created_at", "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="amount", ordering="amount_minor")
    def amount(self, payment: Payment) -> str:
        return format_major(payment.amount_minor, payment.currency)

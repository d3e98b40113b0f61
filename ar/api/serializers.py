from rest_framework import serializers

from ar.models import CollectionMethod, Customer, Invoice, InvoiceLine, InvoiceStatus
from ar.services.customers import MAX_PAYMENT_TERMS_DAYS
from billing.api.serializers import (
    CurrencyField,
    MinorUnitsField,
    StrictInputSerializer,
    StrictIntegerField,
)


class CustomerInputSerializer(StrictInputSerializer):
    external_id = serializers.CharField(max_length=200, help_text="The tenant's own id of the customer")
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(max_length=254)
    currency = CurrencyField()
    collection_method = serializers.ChoiceField(
        choices=CollectionMethod.choices, default=CollectionMethod.CHARGE_AUTOMATICALLY
    )
    payment_terms_days = StrictIntegerField(min_value=0, max_value=MAX_PAYMENT_TERMS_DAYS, default=0)


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "name",
            "email",
            "currency",
            "collection_method",
            "payment_terms_days",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = ["position", "description", "quantity", "unit_amount_minor", "amount_minor", "period_start", "period_end"]
        read_only_fields = fields


class InvoiceSerializer(serializers.ModelSerializer):
    customer_id = serializers.UUIDField(read_only=True)
    status = serializers.ChoiceField(choices=InvoiceStatus.choices, read_only=True)
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "customer_id",
            "subscription_id",
            "billing_period_id",
            "status",
            "currency",
            "subtotal_minor",
            "credit_applied_minor",
            "total_minor",
            "amount_paid_minor",
            "amount_due_minor",
            "issued_on",
            "due_on",
            "finalized_at",
            "paid_at",
            "voided_at",
            "marked_uncollectible_at",
            "version",
            "created_at",
            "lines",
        ]
        read_only_fields = fields


class OfflinePaymentInputSerializer(StrictInputSerializer):
    amount_minor = MinorUnitsField(min_value=1, help_text="Amount received, in minor units of currency")
    currency = CurrencyField(help_text="Must be the invoice's currency")
    reference = serializers.CharField(
        max_length=200, help_text="The bank transfer or cheque reference; repeating it records nothing new"
    )

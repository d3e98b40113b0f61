from rest_framework import serializers

from billing.api.serializers import StrictBooleanField, StrictInputSerializer
from payments.models import Payment, PaymentAttempt, PaymentMethod, PaymentMethodKind, PaymentStatus
from payments.services.payment_methods import TOKEN_MAX_LENGTH


class PaymentMethodInputSerializer(StrictInputSerializer):
    token = serializers.CharField(max_length=TOKEN_MAX_LENGTH, help_text="The gateway's token for the card or account")
    kind = serializers.ChoiceField(choices=PaymentMethodKind.choices)
    make_default = StrictBooleanField(default=True, help_text="Charge this method for collections from now on")


class PaymentMethodSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentMethod
        fields = ["id", "customer_id", "token", "kind", "is_default", "created_at", "updated_at"]
        read_only_fields = fields


class PaymentAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentAttempt
        fields = [
            "number",
            "status",
            "payment_method_id",
            "gateway_reference",
            "failure_code",
            "failure_message",
            "retryable",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=PaymentStatus.choices, read_only=True)
    attempts = PaymentAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "invoice_id",
            "invoice_number",
            "customer_id",
            "amount_minor",
            "currency",
            "status",
            "attempt_count",
            "next_attempt_at",
            "succeeded_at",
            "failed_at",
            "version",
            "created_at",
            "attempts",
        ]
        read_only_fields = fields

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from ar.selectors import customer_contact
from billing.api.views import ApiView, validated_input
from payments.api import errors  # noqa: F401  (registers the HTTP statuses of payments errors)
from payments.api.serializers import (
    PaymentMethodInputSerializer,
    PaymentMethodSerializer,
    PaymentSerializer,
)
from payments.selectors import payment_method_queryset, payment_queryset
from payments.services import payment_method_upsert


class PaymentMethodListView(ApiView):
    serializer_class = PaymentMethodSerializer

    def get_queryset(self):
        return payment_method_queryset(tenant_id=self.tenant_id(), customer_id=self._customer_id())

    def _customer_id(self) -> str:
        if getattr(self, "swagger_fake_view", False):
            # drf-spectacular calls get_queryset without a request to find the model.
            return ""
        customer_id = str(self.kwargs["customer_id"])
        customer = customer_contact(customer_id=customer_id)
        if customer is None or customer.tenant_id != self.tenant_id():
            raise NotFound(f"customer {customer_id} does not exist")
        return customer_id

    @extend_schema(operation_id="payment_methods_list", responses=PaymentMethodSerializer(many=True))
    def get(self, request, customer_id):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PaymentMethodSerializer(page, many=True).data)

    @extend_schema(
        operation_id="payment_methods_create",
        description="Store a gateway token for the customer, or update it (200) when it is stored.",
        request=PaymentMethodInputSerializer,
        responses={201: PaymentMethodSerializer, 200: PaymentMethodSerializer},
    )
    def post(self, request, customer_id):
        customer_id = self._customer_id()
        data = validated_input(PaymentMethodInputSerializer, request)
        method, created = payment_method_upsert(
            tenant_id=self.tenant_id(), customer_id=customer_id, now=timezone.now(), **data
        )
        return Response(
            PaymentMethodSerializer(method).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class PaymentListView(ApiView):
    serializer_class = PaymentSerializer

    def get_queryset(self):
        return payment_queryset(tenant_id=self.tenant_id())

    @extend_schema(operation_id="payments_list", responses=PaymentSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PaymentSerializer(page, many=True).data)


class PaymentDetailView(ApiView):
    serializer_class = PaymentSerializer

    @extend_schema(operation_id="payments_retrieve")
    def get(self, request, payment_id):
        payment = payment_queryset(tenant_id=self.tenant_id()).filter(id=payment_id).first()
        if payment is None:
            raise NotFound(f"payment {payment_id} does not exist")
        return Response(PaymentSerializer(payment).data)

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from ar.api import errors  # noqa: F401  (registers the HTTP statuses of ar errors)
from ar.api.filters import InvoiceFilter
from ar.api.serializers import (
    CustomerInputSerializer,
    CustomerSerializer,
    InvoiceSerializer,
    OfflinePaymentInputSerializer,
)
from ar.selectors import customer_queryset, invoice_queryset
from ar.services import customer_upsert, invoice_record_offline_payment, invoice_void
from billing.api.views import ApiView, reject_body, validated_input


class CustomerListView(ApiView):
    serializer_class = CustomerSerializer

    def get_queryset(self):
        return customer_queryset(tenant_id=self.tenant_id())

    @extend_schema(operation_id="customers_list", responses=CustomerSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CustomerSerializer(page, many=True).data)

    @extend_schema(
        operation_id="customers_create",
        description="Create the customer with this external_id, or update it (200) when it exists.",
        request=CustomerInputSerializer,
        responses={201: CustomerSerializer, 200: CustomerSerializer},
    )
    def post(self, request):
        data = validated_input(CustomerInputSerializer, request)
        customer, created = customer_upsert(tenant_id=self.tenant_id(), now=timezone.now(), **data)
        return Response(
            CustomerSerializer(customer).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class CustomerDetailView(ApiView):
    serializer_class = CustomerSerializer

    @extend_schema(operation_id="customers_retrieve")
    def get(self, request, customer_id):
        customer = customer_queryset(tenant_id=self.tenant_id()).filter(id=customer_id).first()
        if customer is None:
            raise NotFound(f"customer {customer_id} does not exist")
        return Response(CustomerSerializer(customer).data)


class InvoiceListView(ApiView):
    serializer_class = InvoiceSerializer
    filterset_class = InvoiceFilter

    def get_queryset(self):
        return invoice_queryset(tenant_id=self.tenant_id())

    @extend_schema(operation_id="invoices_list", responses=InvoiceSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(InvoiceSerializer(page, many=True).data)


class InvoiceDetailView(ApiView):
    serializer_class = InvoiceSerializer

    @extend_schema(operation_id="invoices_retrieve")
    def get(self, request, invoice_id):
        return Response(InvoiceSerializer(_invoice(self, invoice_id)).data)


class InvoiceVoidView(ApiView):
    serializer_class = InvoiceSerializer

    @extend_schema(
        operation_id="invoices_void",
        description="Void an open invoice; credit and partial payments return to the customer's balance.",
        request=None,
        responses={200: InvoiceSerializer},
    )
    def post(self, request, invoice_id):
        reject_body(request)
        invoice = invoice_void(invoice_id=str(_invoice(self, invoice_id).id), now=timezone.now())
        return Response(InvoiceSerializer(_invoice(self, invoice.id)).data)


class InvoicePaymentView(ApiView):
    serializer_class = InvoiceSerializer

    @extend_schema(
        operation_id="invoices_record_payment",
        description="Record a payment received outside the gateway, such as a bank transfer.",
        request=OfflinePaymentInputSerializer,
        responses={200: InvoiceSerializer},
    )
    def post(self, request, invoice_id):
        invoice = _invoice(self, invoice_id)
        data = validated_input(OfflinePaymentInputSerializer, request)
        if data["currency"] != invoice.currency:
            raise ValidationError(
                {"currency": [f"must be the invoice's currency {invoice.currency}, not {data['currency']}"]}
            )
        invoice_record_offline_payment(
            invoice_id=str(invoice.id),
            amount_minor=data["amount_minor"],
            reference=data["reference"],
            now=timezone.now(),
        )
        return Response(InvoiceSerializer(_invoice(self, invoice.id)).data)


def _invoice(view: ApiView, invoice_id):
    invoice = invoice_queryset(tenant_id=view.tenant_id()).filter(id=invoice_id).first()
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} does not exist")
    return invoice


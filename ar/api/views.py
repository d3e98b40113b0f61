from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from ar.api import errors  # noqa: F401  (registers the HTTP statuses of ar errors)
from ar.api.filters import InvoiceFilter
from ar.api.serializers import (
    CustomerInputSerializer,
    CustomerSerializer,
    InvoiceSerializer,
    OfflinePaymentInputSerializer,
)
from ar.exports import invoice_export_csv
from ar.selectors import customer_queryset, invoice_queryset
from ar.services import customer_upsert, invoice_record_offline_payment, invoice_void
from billing.api.serializers import ErrorSerializer
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


class InvoiceExportView(ApiView):
    filterset_class = InvoiceFilter

    @extend_schema(
        operation_id="invoices_export_csv",
        description=(
            "Download the invoices as CSV (UTF-8, one row per invoice, header first), with the "
            "filters of the invoice list. Amounts are decimal numbers in major units of the row's "
            "currency; dates and times are ISO 8601 in UTC. Text that a spreadsheet would run as a "
            "formula (starting with =, +, -, @, tab or carriage return) is prefixed with a single quote."
        ),
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="the CSV file"),
            400: OpenApiResponse(ErrorSerializer, description="a filter value is invalid"),
        },
        filters=True,
    )
    def get(self, request):
        filters = InvoiceFilter(data=request.query_params, queryset=self.get_queryset())
        if not filters.is_valid():
            raise ValidationError(filters.errors)

        values = filters.form.cleaned_data
        lines = invoice_export_csv(
            tenant_id=self.tenant_id(),
            status=values.get("status") or None,
            customer_id=str(values["customer"]) if values.get("customer") else None,
            issued_from=values.get("issued_from"),
            issued_to=values.get("issued_to"),
        )
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        filename = f"invoices-{self.tenant_id()}-{timezone.now():%Y%m%dT%H%M%SZ}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def get_queryset(self):
        return invoice_queryset(tenant_id=self.tenant_id())

    def perform_content_negotiation(self, request, force=False):
        # The body is CSV whatever the Accept header requests, and an error is
        # JSON in the API's error shape, so no Accept value is rejected with 406.
        return JSONRenderer(), JSONRenderer.media_type


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


import django_filters

from ar.models import Invoice, InvoiceStatus


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=InvoiceStatus.choices)
    customer = django_filters.UUIDFilter(field_name="customer_id", help_text="Customer id")
    issued_from = django_filters.DateFilter(
        field_name="issued_on", lookup_expr="gte", help_text="Issued on or after this date (YYYY-MM-DD)"
    )
    issued_to = django_filters.DateFilter(
        field_name="issued_on", lookup_expr="lte", help_text="Issued on or before this date (YYYY-MM-DD)"
    )

    class Meta:
        model = Invoice
        fields = ["status", "customer", "issued_from", "issued_to"]

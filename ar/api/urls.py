from django.urls import path

from ar.api import views

urlpatterns = [
    path("customers", views.CustomerListView.as_view(), name="customer-list"),
    path("customers/<uuid:customer_id>", views.CustomerDetailView.as_view(), name="customer-detail"),
    path("invoices", views.InvoiceListView.as_view(), name="invoice-list"),
    path("invoices/export.csv", views.InvoiceExportView.as_view(), name="invoice-export"),
    path("invoices/<uuid:invoice_id>", views.InvoiceDetailView.as_view(), name="invoice-detail"),
    path("invoices/<uuid:invoice_id>/void", views.InvoiceVoidView.as_view(), name="invoice-void"),
    path("invoices/<uuid:invoice_id>/payments", views.InvoicePaymentView.as_view(), name="invoice-payments"),
]

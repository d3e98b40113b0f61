from django.urls import path

from payments.api import views

urlpatterns = [
    path(
        "customers/<uuid:customer_id>/payment-methods",
        views.PaymentMethodListView.as_view(),
        name="payment-method-list",
    ),
    path("payments", views.PaymentListView.as_view(), name="payment-list"),
    path("payments/<uuid:payment_id>", views.PaymentDetailView.as_view(), name="payment-detail"),
]

from django.urls import path

from subscriptions.api import views

urlpatterns = [
    path("plans", views.PlanListView.as_view(), name="plan-list"),
    path("plans/<str:code>", views.PlanDetailView.as_view(), name="plan-detail"),
    path("subscriptions", views.SubscriptionListView.as_view(), name="subscription-list"),
    path(
        "subscriptions/<uuid:subscription_id>",
        views.SubscriptionDetailView.as_view(),
        name="subscription-detail",
    ),
    path(
        "subscriptions/<uuid:subscription_id>/cancel",
        views.SubscriptionCancelView.as_view(),
        name="subscription-cancel",
    ),
    path(
        "subscriptions/<uuid:subscription_id>/change-plan",
        views.SubscriptionChangePlanView.as_view(),
        name="subscription-change-plan",
    ),
    path("bill-runs", views.BillRunListView.as_view(), name="bill-run-list"),
    path("bill-runs/<uuid:bill_run_id>", views.BillRunDetailView.as_view(), name="bill-run-detail"),
]

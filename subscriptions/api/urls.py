from django.urls import path, re_path

from subscriptions.api import views

urlpatterns = [
    path("plans", views.PlanListView.as_view(), name="plan-list"),
    # The pattern of a plan code, so a code no plan can have never reaches the database.
    re_path(r"^plans/(?P<code>[A-Za-z0-9][A-Za-z0-9._-]{0,63})$", views.PlanDetailView.as_view(), name="plan-detail"),
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

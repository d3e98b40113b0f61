from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from ar.selectors import customer_contact
from billing.api.pagination import StartedCursorPagination
from billing.api.views import ApiView, validated_input
from subscriptions.api import errors  # noqa: F401  (registers the HTTP statuses of subscriptions errors)
from subscriptions.api.serializers import (
    BillRunInputSerializer,
    BillRunSerializer,
    PlanInputSerializer,
    PlanSerializer,
    SubscriptionCancelInputSerializer,
    SubscriptionChangePlanInputSerializer,
    SubscriptionInputSerializer,
    SubscriptionSerializer,
)
from subscriptions.selectors import bill_run_queryset, plan_queryset, subscription_queryset
from subscriptions.services import (
    bill_run_execute,
    plan_upsert,
    subscription_cancel,
    subscription_change_plan,
    subscription_create,
)


class PlanListView(ApiView):
    serializer_class = PlanSerializer

    def get_queryset(self):
        return plan_queryset(tenant_id=self.tenant_id())

    @extend_schema(operation_id="plans_list", responses=PlanSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PlanSerializer(page, many=True).data)

    @extend_schema(
        operation_id="plans_create",
        description="Create the plan with this code, or update it (200) when it exists.",
        request=PlanInputSerializer,
        responses={201: PlanSerializer, 200: PlanSerializer},
    )
    def post(self, request):
        data = validated_input(PlanInputSerializer, request)
        plan, created = plan_upsert(tenant_id=self.tenant_id(), now=timezone.now(), **data)
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PlanDetailView(ApiView):
    serializer_class = PlanSerializer

    @extend_schema(operation_id="plans_retrieve")
    def get(self, request, code):
        plan = plan_queryset(tenant_id=self.tenant_id()).filter(code=code).first()
        if plan is None:
            raise NotFound(f"plan {code!r} does not exist")
        return Response(PlanSerializer(plan).data)


class SubscriptionListView(ApiView):
    serializer_class = SubscriptionSerializer

    def get_queryset(self):
        return subscription_queryset(tenant_id=self.tenant_id())

    @extend_schema(operation_id="subscriptions_list", responses=SubscriptionSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SubscriptionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="subscriptions_create",
        request=SubscriptionInputSerializer,
        responses={201: SubscriptionSerializer},
    )
    def post(self, request):
        data = validated_input(SubscriptionInputSerializer, request)
        customer = customer_contact(customer_id=str(data["customer_id"]))
        if customer is None or customer.tenant_id != self.tenant_id():
            raise ValidationError({"customer_id": [f"customer {data['customer_id']} does not exist"]})

        subscription = subscription_create(
            tenant_id=self.tenant_id(),
            customer_id=str(data["customer_id"]),
            plan_code=data["plan_code"],
            start_date=data["start_date"],
            quantity=data["quantity"],
            price_override_minor=data["price_override_minor"],
            external_id=data["external_id"],
            now=timezone.now(),
        )
        return Response(
            SubscriptionSerializer(_subscription(self, subscription.id)).data, status=status.HTTP_201_CREATED
        )


class SubscriptionDetailView(ApiView):
    serializer_class = SubscriptionSerializer

    @extend_schema(operation_id="subscriptions_retrieve")
    def get(self, request, subscription_id):
        return Response(SubscriptionSerializer(_subscription(self, subscription_id)).data)


class SubscriptionCancelView(ApiView):
    serializer_class = SubscriptionSerializer

    @extend_schema(
        operation_id="subscriptions_cancel",
        description="Cancel now, or with at_period_end when the current period ends.",
        request=SubscriptionCancelInputSerializer,
        responses={200: SubscriptionSerializer},
    )
    def post(self, request, subscription_id):
        subscription = _subscription(self, subscription_id)
        data = validated_input(SubscriptionCancelInputSerializer, request)
        subscription_cancel(
            subscription_id=str(subscription.id), at_period_end=data["at_period_end"], now=timezone.now()
        )
        return Response(SubscriptionSerializer(_subscription(self, subscription.id)).data)


class SubscriptionChangePlanView(ApiView):
    serializer_class = SubscriptionSerializer

    @extend_schema(
        operation_id="subscriptions_change_plan",
        description="Move the subscription to another plan from its next period.",
        request=SubscriptionChangePlanInputSerializer,
        responses={200: SubscriptionSerializer},
    )
    def post(self, request, subscription_id):
        subscription = _subscription(self, subscription_id)
        data = validated_input(SubscriptionChangePlanInputSerializer, request)
        subscription_change_plan(
            subscription_id=str(subscription.id), plan_code=data["plan_code"], now=timezone.now()
        )
        return Response(SubscriptionSerializer(_subscription(self, subscription.id)).data)


class BillRunListView(ApiView):
    serializer_class = BillRunSerializer
    pagination_class = StartedCursorPagination

    def get_queryset(self):
        return bill_run_queryset(tenant_id=self.tenant_id())

    @extend_schema(operation_id="bill_runs_list", responses=BillRunSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(BillRunSerializer(page, many=True).data)

    @extend_schema(
        operation_id="bill_runs_create",
        description=(
            "Bill the tenant's subscriptions due on or before as_of, and return the finished run. "
            "A dry run records the counts it would produce and bills nothing."
        ),
        request=BillRunInputSerializer,
        responses={201: BillRunSerializer},
    )
    def post(self, request):
        data = validated_input(BillRunInputSerializer, request)
        summary = bill_run_execute(
            tenant_id=self.tenant_id(), as_of=data["as_of"], dry_run=data["dry_run"], now=timezone.now()
        )
        run = bill_run_queryset(tenant_id=self.tenant_id()).get(id=summary.bill_run_id)
        return Response(BillRunSerializer(run).data, status=status.HTTP_201_CREATED)


class BillRunDetailView(ApiView):
    serializer_class = BillRunSerializer

    @extend_schema(operation_id="bill_runs_retrieve")
    def get(self, request, bill_run_id):
        run = bill_run_queryset(tenant_id=self.tenant_id()).filter(id=bill_run_id).first()
        if run is None:
            raise NotFound(f"bill run {bill_run_id} does not exist")
        return Response(BillRunSerializer(run).data)


def _subscription(view: ApiView, subscription_id):
    subscription = subscription_queryset(tenant_id=view.tenant_id()).filter(id=subscription_id).first()
    if subscription is None:
        raise NotFound(f"subscription {subscription_id} does not exist")
    return subscription

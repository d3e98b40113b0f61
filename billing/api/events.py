"""Endpoints for the event bus: each module's outbox and dead letters.

Every key reads its own tenant's rows; a staff key reads every tenant's and
may replay or discard dead letters.
"""

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from billing.api.errors import register_error_statuses
from billing.api.pagination import IdCursorPagination
from billing.api.permissions import IsStaffKey
from billing.api.views import ApiView, reject_body
from eventbus.dead_letters import DeadLetterNotFound, dead_letter_discard, dead_letter_replay
from eventbus.errors import EventBusError, UnknownModule
from eventbus.models import DeadLetterReason, DeadLetterStatus, OutboxState
from eventbus.selectors import dead_letter_queryset, outbox_event_queryset

register_error_statuses({EventBusError: 400, UnknownModule: 404, DeadLetterNotFound: 404})


@extend_schema_field(OpenApiTypes.OBJECT)
class EnvelopeField(serializers.Field):
    def to_representation(self, value):
        return json.loads(value)


class OutboxEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.UUIDField()
    event_type = serializers.CharField()
    aggregate_type = serializers.CharField()
    aggregate_id = serializers.CharField()
    aggregate_version = serializers.IntegerField()
    state = serializers.ChoiceField(choices=OutboxState.choices)
    created_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)
    publish_attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    envelope = EnvelopeField(source="body")


class DeadLetterSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    consumer = serializers.CharField()
    subject = serializers.CharField()
    event_id = serializers.UUIDField(allow_null=True)
    event_type = serializers.CharField()
    reason = serializers.ChoiceField(choices=DeadLetterReason.choices)
    error = serializers.CharField()
    deliveries = serializers.IntegerField()
    status = serializers.ChoiceField(choices=DeadLetterStatus.choices)
    created_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    body = serializers.SerializerMethodField()

    def get_body(self, dead_letter) -> str:
        """Return the message as text; bytes that are not UTF-8 show as U+FFFD."""
        return bytes(dead_letter.body).decode("utf-8", errors="replace")


class ReplayResultSerializer(serializers.Serializer):
    dead_letter_id = serializers.IntegerField()
    applied = serializers.BooleanField()
    error = serializers.CharField(help_text="Why the replay failed again; empty when applied")


class _EventBusView(ApiView):
    pagination_class = IdCursorPagination

    def module(self) -> str:
        if getattr(self, "swagger_fake_view", False):
            # Every module's outbox and dead letter tables have the same fields.
            return "ar"
        return self.kwargs["module"]

    def visible_tenant_id(self) -> str | None:
        """Return the tenant whose rows this key may read, or None for every tenant (staff keys)."""
        if getattr(self, "swagger_fake_view", False) or self.request.user.is_staff:
            return None
        return self.tenant_id()


class OutboxEventListView(_EventBusView):
    serializer_class = OutboxEventSerializer

    def get_queryset(self):
        return outbox_event_queryset(module=self.module(), tenant_id=self.visible_tenant_id())

    @extend_schema(operation_id="outbox_events_list", responses=OutboxEventSerializer(many=True))
    def get(self, request, module):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(OutboxEventSerializer(page, many=True).data)


class DeadLetterListView(_EventBusView):
    serializer_class = DeadLetterSerializer

    def get_queryset(self):
        return dead_letter_queryset(module=self.module(), tenant_id=self.visible_tenant_id())

    @extend_schema(operation_id="dead_letters_list", responses=DeadLetterSerializer(many=True))
    def get(self, request, module):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(DeadLetterSerializer(page, many=True).data)


class DeadLetterDetailView(_EventBusView):
    serializer_class = DeadLetterSerializer

    @extend_schema(operation_id="dead_letters_retrieve")
    def get(self, request, module, dead_letter_id):
        return Response(DeadLetterSerializer(_dead_letter(self, module, dead_letter_id)).data)


class DeadLetterReplayView(_EventBusView):
    permission_classes = [IsStaffKey]
    serializer_class = ReplayResultSerializer

    @extend_schema(
        operation_id="dead_letters_replay",
        description="Apply the message again through the module's handler; staff keys only.",
        request=None,
        responses={200: ReplayResultSerializer},
    )
    def post(self, request, module, dead_letter_id):
        reject_body(request)
        _dead_letter(self, module, dead_letter_id)
        result = dead_letter_replay(module=module, dead_letter_id=dead_letter_id)
        return Response(ReplayResultSerializer(result).data)


class DeadLetterDiscardView(_EventBusView):
    permission_classes = [IsStaffKey]
    serializer_class = DeadLetterSerializer

    @extend_schema(
        operation_id="dead_letters_discard",
        description="Mark the dead letter discarded, so its message is never applied; staff keys only.",
        request=None,
        responses={200: DeadLetterSerializer},
    )
    def post(self, request, module, dead_letter_id):
        reject_body(request)
        _dead_letter(self, module, dead_letter_id)
        dead_letter_discard(module=module, dead_letter_id=dead_letter_id)
        return Response(DeadLetterSerializer(_dead_letter(self, module, dead_letter_id)).data)


def _dead_letter(view: _EventBusView, module: str, dead_letter_id: int):
    dead_letter = (
        dead_letter_queryset(module=module, tenant_id=view.visible_tenant_id()).filter(id=dead_letter_id).first()
    )
    if dead_letter is None:
        raise NotFound(f"dead letter {dead_letter_id} does not exist in module {module!r}")
    return dead_letter

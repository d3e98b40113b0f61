"""Admin classes for every module's outbox, inbox and dead letters, and a base for
admins whose rows change only through services.

This package registers no model: each module's ``admin.py`` registers these
classes for its concrete tables, for example
``admin.site.register(OutboxEvent, OutboxEventAdmin)``. The admin finds the
module through ``eventbus.registry``, so a class works for any module.
"""

import json
from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from eventbus.dead_letters import dead_letter_discard, dead_letter_replay
from eventbus.errors import EventBusError
from eventbus.models import OutboxState
from eventbus.registry import BusModule, all_modules
from eventbus.relay import outbox_retry_now
from eventbus.selectors import outbox_backlog


class ServiceOnlyAdmin(admin.ModelAdmin):
    """An admin that shows rows but never adds, edits or deletes them.

    Its rows change only through services, which validate the change, bump
    the version and append the event. Actions that call services declare
    ``permissions=["service"]``, so they need the model's change permission
    although the change form itself stays read-only.
    """

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_service_permission(self, request) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def run_each(
        self,
        request,
        rows: Iterable,
        call: Callable[[object], str],
        errors: type[Exception] | tuple[type[Exception], ...],
    ) -> None:
        """Call ``call(row)`` for each row and show one message per row.

        ``call`` returns the success message. An error of the ``errors``
        types becomes an error message with the service's own text, and the
        other rows are still processed.
        """
        for row in rows:
            try:
                message = call(row)
            except errors as error:
                self.message_user(request, str(error), level=messages.ERROR)
            else:
                self.message_user(request, message, level=messages.SUCCESS)

    def confirm_then_run_each(
        self,
        request,
        queryset,
        question: str,
        call: Callable[[object], str],
        errors: type[Exception] | tuple[type[Exception], ...],
    ) -> TemplateResponse | None:
        """Ask ``question`` about the selected rows, then ``run_each`` once the user confirms.

        For actions that cannot be undone, as Django's own "delete selected"
        asks first. The confirmation page posts the same action and rows
        back with ``post=yes``.
        """
        if request.POST.get("post") == "yes":
            self.run_each(request, queryset, call, errors)
            return None

        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": "Are you sure?",
            "question": question,
            "queryset": queryset,
            "opts": self.opts,
            "action": request.POST.get("action", ""),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/eventbus/action_confirmation.html", context)


def bus_module_of(model: type, table: str) -> BusModule:
    """Return the bus module whose ``table`` ("outbox", "inbox" or "dead_letters") is ``model``."""
    for bus_module in all_modules():
        if getattr(bus_module, table) is model:
            return bus_module
    raise LookupError(f"{model.__name__} is no module's {table} table; register its module on the bus first")


def pretty_body(body: str) -> str:
    """Return ``body`` as indented JSON, or unchanged when it is not JSON."""
    try:
        return json.dumps(json.loads(body), indent=2, sort_keys=True)
    except ValueError:
        return body


class OutboxStateFilter(admin.SimpleListFilter):
    title = "publish state"
    parameter_name = "publish_state"

    def lookups(self, request, model_admin):
        return [
            ("pending", "Pending"),
            ("published", "Published"),
            ("failing", "Failing (pending with an error)"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(state=OutboxState.PENDING)
        if self.value() == "published":
            return queryset.filter(state=OutboxState.PUBLISHED)
        if self.value() == "failing":
            return queryset.filter(state=OutboxState.PENDING).exclude(last_error="")
        return queryset


class OutboxEventAdmin(ServiceOnlyAdmin):
    """A module's outbox. Only the relay publishes rows, and "retry now" only makes a row due."""

    list_display = [
        "id", "event_type", "aggregate", "state", "publish_attempts", "short_last_error", "age",
        "next_attempt_at", "tenant_id",
    ]
    list_filter = [OutboxStateFilter, "event_type", "tenant_id"]
    search_fields = ["event_id", "aggregate_id", "correlation_id", "event_type"]
    ordering = ["-id"]
    actions = ["retry_now"]
    fields = [
        "id", "event_id", "event_type", "subject", "aggregate", "tenant_id", "correlation_id", "state",
        "created_at", "published_at", "publish_attempts", "next_attempt_at", "last_error", "envelope",
    ]
    readonly_fields = fields

    @admin.display(description="aggregate")
    def aggregate(self, row) -> str:
        return f"{row.aggregate_type} {row.aggregate_id} v{row.aggregate_version}"

    @admin.display(description="last error")
    def short_last_error(self, row) -> str:
        first_line = row.last_error.splitlines()[0] if row.last_error else ""
        return first_line[:120]

    @admin.display(description="age", ordering="created_at")
    def age(self, row) -> str:
        return timesince(row.created_at, timezone.now())

    @admin.display(description="envelope")
    def envelope(self, row) -> str:
        return format_html("<pre>{}</pre>", pretty_body(row.body))

    def changelist_view(self, request, extra_context=None):
        backlog = outbox_backlog(module=bus_module_of(self.model, "outbox").name)
        if backlog.oldest_pending_at is None:
            subtitle = "No pending events."
        else:
            subtitle = (
                f"{backlog.pending} pending, {backlog.failing} failing. The oldest pending event is "
                f"{timesince(backlog.oldest_pending_at, timezone.now())} old."
            )
        return super().changelist_view(request, {**(extra_context or {}), "subtitle": subtitle})

    @admin.action(description="Retry selected pending events now", permissions=["service"])
    def retry_now(self, request, queryset):
        module = bus_module_of(self.model, "outbox").name

        def retry(row) -> str:
            outbox_retry_now(module=module, outbox_id=row.id)
            return f"Outbox row {row.id} ({row.event_type}) will be published on the next relay pass."

        self.run_each(request, queryset.order_by("id"), retry, EventBusError)


class ProcessedEventAdmin(ServiceOnlyAdmin):
    """A module's inbox: the events its consumer applied, read-only."""

    list_display = ["processed_at", "event_type", "aggregate", "consumer", "tenant_id", "event_id"]
    list_filter = ["event_type", "consumer", "tenant_id"]
    search_fields = ["event_id", "aggregate_id", "event_type"]
    date_hierarchy = "processed_at"
    ordering = ["-processed_at"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    @admin.display(description="aggregate")
    def aggregate(self, row) -> str:
        return f"{row.aggregate_type} {row.aggregate_id} v{row.aggregate_version}"


class DeadLetterAdmin(ServiceOnlyAdmin):
    """A module's dead letters, replayed and discarded through ``eventbus.dead_letters``."""

    list_display = ["id", "event_type", "reason", "status", "deliveries", "short_error", "created_at", "tenant_id"]
    list_filter = ["status", "reason", "event_type", "tenant_id"]
    search_fields = ["event_id", "message_key", "event_type", "subject"]
    ordering = ["-id"]
    actions = ["replay", "discard"]
    fields = [
        "id", "consumer", "message_key", "subject", "event_id", "event_type", "tenant_id", "reason",
        "status", "deliveries", "created_at", "resolved_at", "error_text", "body_as_text",
    ]
    readonly_fields = fields

    @admin.display(description="error")
    def short_error(self, row) -> str:
        # A handler failure stores a traceback, whose last line names the exception.
        lines = [line for line in row.error.splitlines() if line.strip()]
        return lines[-1][:120] if lines else ""

    @admin.display(description="error")
    def error_text(self, row) -> str:
        return format_html("<pre>{}</pre>", row.error)

    @admin.display(description="body")
    def body_as_text(self, row) -> str:
        return format_html("<pre>{}</pre>", pretty_body(row.body_text))

    @admin.action(description="Replay selected dead letters", permissions=["service"])
    def replay(self, request, queryset):
        module = bus_module_of(self.model, "dead_letters").name
        for row in queryset.order_by("id"):
            try:
                result = dead_letter_replay(module=module, dead_letter_id=row.id)
            except EventBusError as error:
                self.message_user(request, str(error), level=messages.ERROR)
                continue
            if result.applied:
                self.message_user(
                    request, f"Dead letter {row.id} ({row.event_type or row.message_key}) was replayed and applied.",
                    level=messages.SUCCESS,
                )
            else:
                reason = [line for line in result.error.splitlines() if line.strip()][-1:] or ["no error recorded"]
                self.message_user(
                    request, f"Dead letter {row.id} failed again and stays dead: {reason[0]}",
                    level=messages.ERROR,
                )

    @admin.action(description="Discard selected dead letters", permissions=["service"])
    def discard(self, request, queryset):
        module = bus_module_of(self.model, "dead_letters").name

        def discard(row) -> str:
            dead_letter_discard(module=module, dead_letter_id=row.id)
            return f"Dead letter {row.id} ({row.event_type or row.message_key}) was discarded."

        return self.confirm_then_run_each(
            request,
            queryset.order_by("id"),
            "Discard the selected dead letters? Their messages are not applied. A discarded row is "
            "kept, and it becomes dead again if the same message fails again.",
            discard,
            EventBusError,
        )


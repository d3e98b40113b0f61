from django.contrib import admin

from eventbus.admin import DeadLetterAdmin, OutboxEventAdmin, ProcessedEventAdmin, ServiceOnlyAdmin
from notifications.models import DeadLetter, Notification, OutboxEvent, ProcessedEvent

admin.site.register(OutboxEvent, OutboxEventAdmin)
admin.site.register(ProcessedEvent, ProcessedEventAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)


@admin.register(Notification)
class NotificationAdmin(ServiceOnlyAdmin):
    """The delivery log, read-only: rows change only through the notification services."""

    list_display = [
        "created_at", "template", "recipient", "invoice_number", "status", "attempts", "sent_at", "tenant_id",
    ]
    list_filter = ["status", "template", "tenant_id"]
    search_fields = ["recipient", "customer_id", "invoice_number", "invoice_id", "source_event_id", "subject"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = [field.name for field in Notification._meta.fields]

from django.contrib import admin

from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The delivery log, read-only: rows change only through the notification services."""

    list_display = ["created_at", "template", "recipient", "status", "attempts", "sent_at", "tenant_id"]
    list_filter = ["status", "template", "tenant_id"]
    search_fields = ["recipient", "customer_id", "invoice_number", "invoice_id", "source_event_id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

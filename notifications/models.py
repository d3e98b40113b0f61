import uuid

from django.db import models

from eventbus.models import AbstractDeadLetter, AbstractOutboxEvent, AbstractProcessedEvent


class OutboxEvent(AbstractOutboxEvent):
    pass


class ProcessedEvent(AbstractProcessedEvent):
    pass


class DeadLetter(AbstractDeadLetter):
    pass


class NotificationTemplate(models.TextChoices):
    """The emails this module sends. Each value names a folder under templates/notifications/."""

    INVOICE_FINALIZED = "invoice_finalized", "Invoice finalized"
    PAYMENT_RECEIPT = "payment_receipt", "Payment receipt"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    SUBSCRIPTION_CANCELED = "subscription_canceled", "Subscription canceled"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Notification(models.Model):
    """The delivery log: one email, rendered from one event with one template.

    The row is inserted in the transaction of the handler that applied the
    event and contains the rendered email, so a later attempt sends exactly
    what the first attempt would have sent.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = models.CharField(max_length=100)
    source_event_id = models.UUIDField()
    source_event_type = models.CharField(max_length=200)
    # The source event's trace, continued by the .sent and .failed events.
    correlation_id = models.UUIDField()
    template = models.CharField(max_length=64, choices=NotificationTemplate.choices)
    customer_id = models.CharField(max_length=100)
    # Blank when the customer has no email address, and the row is then failed.
    recipient = models.CharField(max_length=254, blank=True)
    invoice_id = models.CharField(max_length=100, blank=True)
    invoice_number = models.CharField(max_length=100, blank=True)
    subject = models.CharField(max_length=255)
    body_text = models.TextField()
    body_html = models.TextField()
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    error = models.TextField(blank=True)
    # Send attempts started, counted when an attempt claims the row.
    attempts = models.PositiveIntegerField(default=0)
    # Increases with every change of the row and is the aggregate_version of its events.
    version = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_event_id", "template"], name="notifications_one_per_event_template"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="sent") | models.Q(sent_at__isnull=False),
                name="notifications_sent_has_sent_at",
            ),
        ]
        indexes = [
            # The query of notifications_send_pending: pending rows, oldest first.
            models.Index(
                fields=["created_at"],
                name="notifications_pending",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["tenant_id", "status"], name="notifications_tenant_status"),
            models.Index(fields=["invoice_id"], name="notifications_invoice"),
        ]

    def __str__(self):
        return f"{self.template} to {self.recipient or self.customer_id} ({self.status})"

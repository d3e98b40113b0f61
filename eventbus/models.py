"""Abstract outbox, inbox and dead-letter tables. Each module makes them concrete
in its own schema, so they commit in the same transaction as its business rows."""

from django.db import models


class OutboxState(models.TextChoices):
    PENDING = "pending", "Pending"
    PUBLISHED = "published", "Published"


class AbstractOutboxEvent(models.Model):
    """An event waiting to be published, or published and kept for the retention period."""

    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=200)
    subject = models.CharField(max_length=255)
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=100)
    aggregate_version = models.PositiveBigIntegerField()
    tenant_id = models.CharField(max_length=100)
    correlation_id = models.UUIDField()
    # The serialized envelope, published byte for byte as stored.
    body = models.TextField()
    state = models.CharField(max_length=16, choices=OutboxState.choices, default=OutboxState.PENDING)
    created_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["id"]
        indexes = [
            # The relay's claim query: pending rows in id order.
            models.Index(
                fields=["id"],
                name="%(app_label)s_outbox_pending",
                condition=models.Q(state="pending"),
            ),
            models.Index(fields=["published_at"], name="%(app_label)s_outbox_published"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id} ({self.state})"


class AbstractProcessedEvent(models.Model):
    """The inbox: one row per event a consumer applied, written in the handler's transaction."""

    event_id = models.UUIDField()
    consumer = models.CharField(max_length=100)
    event_type = models.CharField(max_length=200)
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=100)
    aggregate_version = models.PositiveBigIntegerField()
    tenant_id = models.CharField(max_length=100)
    processed_at = models.DateTimeField()

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "consumer"], name="%(app_label)s_inbox_once_per_consumer"
            ),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id} by {self.consumer}"


class DeadLetterStatus(models.TextChoices):
    DEAD = "dead", "Dead"
    REPLAYED = "replayed", "Replayed"
    DISCARDED = "discarded", "Discarded"


class DeadLetterReason(models.TextChoices):
    MALFORMED = "malformed", "Not a valid envelope"
    OVERSIZED = "oversized", "Larger than the maximum event size"
    UNKNOWN_EVENT_TYPE = "unknown_event_type", "No handler for this event type"
    FUTURE_SCHEMA_VERSION = "future_schema_version", "Schema version newer than the handler"
    INVALID_PAYLOAD = "invalid_payload", "Payload does not match its schema"
    UNKNOWN_TENANT = "unknown_tenant", "Tenant does not exist"
    HANDLER_FAILED = "handler_failed", "Handler failed on every delivery"


class AbstractDeadLetter(models.Model):
    """A message a consumer gave up on, kept byte for byte so it can be replayed."""

    consumer = models.CharField(max_length=100)
    # The event id, or a hash of the body when the body has no readable id.
    message_key = models.CharField(max_length=100)
    subject = models.CharField(max_length=255)
    event_id = models.UUIDField(null=True, blank=True)
    event_type = models.CharField(max_length=200, blank=True)
    tenant_id = models.CharField(max_length=100, blank=True)
    body = models.BinaryField()
    reason = models.CharField(max_length=32, choices=DeadLetterReason.choices)
    error = models.TextField()
    deliveries = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=DeadLetterStatus.choices, default=DeadLetterStatus.DEAD
    )
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["consumer", "message_key"], name="%(app_label)s_dead_letter_once"
            ),
        ]

    def __str__(self):
        return f"{self.event_type or self.message_key} ({self.reason}, {self.status})"

    @property
    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")

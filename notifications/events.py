"""Events the notifications module publishes, for audit."""

from dataclasses import dataclass

from eventbus.schema import EventType


@dataclass(frozen=True)
class NotificationSent:
    notification_id: str
    template: str
    recipient: str
    source_event_id: str
    source_event_type: str


@dataclass(frozen=True)
class NotificationFailed:
    notification_id: str
    template: str
    recipient: str
    source_event_id: str
    source_event_type: str
    error: str


NOTIFICATION_SENT = EventType("notifications.notification.sent", NotificationSent)
NOTIFICATION_FAILED = EventType("notifications.notification.failed", NotificationFailed)

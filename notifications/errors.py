"""Errors the notifications module raises, each with a stable ``code``.

A handler that raises one of these rolls back, so the bus redelivers the
event and dead-letters it after the last attempt. Replay the dead letter
once the cause is fixed.
"""


class NotificationError(Exception):
    """Root of every error this module raises."""

    code = "notification_error"


class CustomerNotFound(NotificationError):
    code = "customer_not_found"

    def __init__(self, customer_id: str):
        super().__init__(
            f"customer {customer_id} not found in accounts receivable; the event is retried "
            "and dead-lettered if the customer never appears, so replay it once the customer exists"
        )
        self.customer_id = customer_id


class CustomerTenantMismatch(NotificationError):
    code = "customer_tenant_mismatch"

    def __init__(self, customer_id: str, customer_tenant_id: str, event_tenant_id: str):
        super().__init__(
            f"customer {customer_id} belongs to tenant {customer_tenant_id!r}, but the event "
            f"came from tenant {event_tenant_id!r}; no email is sent across tenants"
        )
        self.customer_id = customer_id


class UnknownCollectionMethod(NotificationError):
    code = "unknown_collection_method"

    def __init__(self, collection_method: str, accepted: list[str]):
        super().__init__(
            f"collection method {collection_method!r} is unknown; the invoice email knows "
            f"{', '.join(repr(value) for value in accepted)}. Add the new method's wording to "
            "the invoice_finalized template, then replay the dead letter."
        )
        self.collection_method = collection_method


class UnknownTemplate(NotificationError):
    code = "unknown_template"

    def __init__(self, template: str, known: list[str]):
        super().__init__(f"template {template!r} is unknown; use one of {', '.join(known)}")
        self.template = template


class NotificationNotFound(NotificationError):
    code = "notification_not_found"

    def __init__(self, notification_id: str):
        super().__init__(f"notification {notification_id} not found")
        self.notification_id = notification_id

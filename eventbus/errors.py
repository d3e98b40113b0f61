"""The event bus's errors. Transport errors are converted to these in one place
(``eventbus.backends.nats``), so domain code never receives a nats-py exception."""


class EventBusError(Exception):
    """Root of every error this package raises."""

    code = "eventbus_error"


class InvalidEnvelope(EventBusError):
    """A message that is not a valid envelope; ``reason`` names the field and the problem."""

    code = "invalid_envelope"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidPayload(EventBusError):
    """An event's payload does not match its declared schema."""

    code = "invalid_payload"


class EventTooLarge(EventBusError):
    code = "event_too_large"


class UnknownModule(EventBusError):
    code = "unknown_module"


class OutboxOutsideTransaction(EventBusError):
    """Appending to an outbox outside a transaction could publish an event whose
    business rows never commit, so it is rejected."""

    code = "outbox_outside_transaction"


class BusUnavailable(EventBusError):
    """The bus could not be reached or did not respond in time."""

    code = "bus_unavailable"


class BusMisconfigured(EventBusError):
    """Live streams or consumers do not match what the code declares, or the
    server lacks a feature the bus relies on."""

    code = "bus_misconfigured"

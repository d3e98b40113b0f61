"""The interface every bus backend implements."""

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class OutgoingMessage:
    subject: str
    event_id: str
    body: bytes


@dataclass(frozen=True)
class PublishOutcome:
    """The result of one publish: stored (maybe as a duplicate) or an error."""

    event_id: str
    stored: bool
    duplicate: bool = False
    error: str = ""


class EventBus(ABC):
    name: str

    @abstractmethod
    def ensure(self) -> list[str]:
        """Declare streams and durable consumers idempotently; return what changed."""

    @abstractmethod
    def publish_batch(self, messages: list[OutgoingMessage]) -> list[PublishOutcome]:
        """Publish ``messages`` and wait for every acknowledgement.

        Return one outcome per message, in order. A message counts as stored
        only once the bus acknowledged it.
        """

    @abstractmethod
    def status(self) -> list[dict]:
        """Describe each stream and consumer: message, pending and redelivered counts."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections; the next call reconnects."""

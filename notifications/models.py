from eventbus.models import AbstractDeadLetter, AbstractOutboxEvent, AbstractProcessedEvent


class OutboxEvent(AbstractOutboxEvent):
    pass


class ProcessedEvent(AbstractProcessedEvent):
    pass


class DeadLetter(AbstractDeadLetter):
    pass

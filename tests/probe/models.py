from django.db import models

from eventbus.models import AbstractDeadLetter, AbstractOutboxEvent, AbstractProcessedEvent


class OutboxEvent(AbstractOutboxEvent):
    pass


class ProcessedEvent(AbstractProcessedEvent):
    pass


class DeadLetter(AbstractDeadLetter):
    pass


class ProbeEffect(models.Model):
    """One row per handler run that committed."""

    event_id = models.UUIDField()
    event_type = models.CharField(max_length=200)
    aggregate_id = models.CharField(max_length=100)
    aggregate_version = models.PositiveBigIntegerField()
    value = models.CharField(max_length=200, blank=True)


class ProbeCounter(models.Model):
    """A projection that keeps the newest version of each aggregate, as real handlers do."""

    aggregate_id = models.CharField(max_length=100, unique=True)
    version = models.PositiveBigIntegerField()
    value = models.CharField(max_length=200)


class ProbeSwitch(models.Model):
    """Failure switches tests flip to make handlers raise or stall, visible across processes."""

    name = models.CharField(max_length=100, unique=True)
    seconds = models.FloatField(default=0)

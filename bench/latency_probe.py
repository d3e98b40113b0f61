"""A Django app for the latency benchmark: the probe module with a handler that timestamps its commit.

bench/latency_settings.py installs it after ``tests.probe``. Its ``ready``
registers the probe bus module again (same outbox, inbox and dead-letter
tables) with one handler for ``probe.value.set`` that does nothing but ask
for a callback after its transaction commits. The callback appends
``<event_id> <time.time()>`` to the file named by BENCH_LATENCY_LOG, so the
time recorded is the wall clock just after the inbox row and the handler's
work are committed.
"""

import os
import time

from django.apps import AppConfig
from django.db import transaction


class LatencyProbeConfig(AppConfig):
    name = "bench.latency_probe"
    label = "latency_probe"

    def ready(self):
        from eventbus.registry import BusModule, HandlerRegistry, get_module, register_module
        from tests.probe import events

        path = os.environ.get("BENCH_LATENCY_LOG")
        if not path:
            return
        log = open(path, "a", buffering=1)
        registry = HandlerRegistry()
        probe = get_module("probe")

        @registry.on(events.VALUE_SET)
        def record_commit_time(envelope, payload) -> None:
            event_id = envelope.event_id
            transaction.on_commit(lambda: log.write(f"{event_id} {time.time():.6f}\n"), using=probe.alias)

        register_module(
            BusModule(
                name="probe", alias=probe.alias, outbox=probe.outbox, inbox=probe.inbox,
                dead_letters=probe.dead_letters, handlers=registry,
            )
        )

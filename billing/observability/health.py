"""Readiness checks: every database alias, the bus and, on JetStream, every stream."""

import asyncio
from dataclasses import dataclass

import nats.aio.client
import nats.errors
import nats.js.errors
from django.conf import settings
from django.db import DatabaseError, connections

from eventbus.conf import bus_settings
from eventbus.registry import all_modules

# Seconds the NATS check may take in total, connecting included. It stays
# below the compose health check's 5 s timeout, so a probe gets 503 instead of
# timing out.
NATS_CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    error: str = ""

    def as_dict(self) -> dict:
        document = {"name": self.name, "ok": self.ok}
        if self.error:
            document["error"] = self.error
        return document


def readiness_checks() -> list[Check]:
    """Run every readiness check; return one result per database alias and per bus part."""
    return [*(_check_database(alias) for alias in settings.DATABASES), *_check_bus()]


def _check_database(alias: str) -> Check:
    # NOTE: no connect timeout is set on the aliases, so an unreachable (not
    # refusing) PostgreSQL host blocks the probe until the TCP connect times out.
    name = f"database:{alias}"
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        connections[alias].close()
        return Check(name, ok=False, error=f"{type(error).__name__}: {error}".strip())
    return Check(name, ok=True)


def _check_bus() -> list[Check]:
    config = bus_settings()
    if config.backend != "nats":
        # The in-process bus is part of this process, so it is ready when the process is.
        return [Check(f"bus:{config.backend}", ok=True)]
    streams = [module.stream for module in all_modules()]
    try:
        missing = asyncio.run(
            asyncio.wait_for(_missing_streams(config.nats_urls, streams), NATS_CHECK_TIMEOUT_SECONDS)
        )
    except TimeoutError:
        return [Check("bus:nats", ok=False, error=f"NATS timed out after {NATS_CHECK_TIMEOUT_SECONDS:.0f} s")]
    except NatsUnreachable as error:
        return [Check("bus:nats", ok=False, error=f"cannot reach NATS: {error}")]
    except (nats.errors.Error, OSError) as error:
        return [Check("bus:nats", ok=False, error=f"JetStream request failed: {error!r}")]
    checks = [Check("bus:nats", ok=True)]
    for stream in streams:
        if stream in missing:
            checks.append(Check(f"stream:{stream}", ok=False, error="stream is missing; run manage.py bus ensure"))
        else:
            checks.append(Check(f"stream:{stream}", ok=True))
    return checks


class NatsUnreachable(Exception):
    pass


async def _missing_streams(urls: list[str], streams: list[str]) -> set[str]:
    """Connect once, without reconnecting, and return the streams JetStream does not have."""

    async def ignore_error(error):
        # The check reports the last connection error itself.
        pass

    client = nats.aio.client.Client()
    try:
        # nats-py retries forever when max_reconnect_attempts is 0 or less;
        # 1 tries each server twice, 0.2 s apart, then raises NoServersError.
        await client.connect(
            servers=urls, name="billing-readiness", connect_timeout=1, allow_reconnect=False,
            max_reconnect_attempts=1, reconnect_time_wait=0.2, error_cb=ignore_error,
        )
    except (nats.errors.Error, OSError) as error:
        raise NatsUnreachable(repr(client.last_error or error)) from error
    try:
        js = client.jetstream(timeout=NATS_CHECK_TIMEOUT_SECONDS)
        missing = set()
        for stream in streams:
            try:
                await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                missing.add(stream)
        return missing
    finally:
        await client.close()

"""Serve a Celery worker's metrics on WORKER_METRICS_PORT once the worker is ready."""

import logging
import os

from celery.signals import worker_ready
from django.conf import settings

from eventbus.metrics import serve_metrics

logger = logging.getLogger(__name__)


@worker_ready.connect
def serve_worker_metrics(sender=None, **kwargs) -> None:
    """Start the metrics server in the worker's main process; do nothing when no port is set.

    Tasks run in pool child processes, so their counters reach this server
    only through the value files of PROMETHEUS_MULTIPROC_DIR.
    """
    port = settings.WORKER_METRICS_PORT
    if not port:
        return

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        logger.warning(
            "WORKER_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not; the metrics server "
            "shows only the main process, not the tasks run by pool children"
        )
    host = settings.WORKER_METRICS_HOST
    try:
        serve_metrics(host=host, port=port)
    except OSError:
        logger.exception("Serving worker metrics on %s:%s failed", host, port)
        return
    logger.info("Serving worker metrics at http://%s:%s/metrics", host, port)

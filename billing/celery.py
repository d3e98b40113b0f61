"""The Celery app: broker from CELERY_BROKER_URL, tasks from every installed app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing.settings")

app = Celery("billing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Connects the worker_ready signal that serves a worker's metrics (WORKER_METRICS_PORT).
import billing.observability.worker  # noqa: E402, F401

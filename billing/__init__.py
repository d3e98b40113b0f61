"""Django project package: settings, URLs, the Celery app and the database router."""

from billing.celery import app as celery_app

__all__ = ["celery_app"]

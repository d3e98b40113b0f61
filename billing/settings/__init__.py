"""Settings read from the environment.

The defaults run the embedded setup: SQLite files and the in-process bus.
Every variable is listed in README.md.
"""

import os
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from billing.modules import DOMAIN_MODULES
from billing.settings.databases import build_databases
from billing.settings.email import email_settings
from billing.settings.environment import env_bool, env_float, env_int, env_list, env_throttle_rate

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(os.environ.get("BILLING_DATA_DIR", BASE_DIR / "var"))

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not env_bool("BILLING_EMBEDDED", default=True):
        raise ImproperlyConfigured("SECRET_KEY is not set; set it to a long random string")
    # NOTE: this key is public, so it suits only the embedded demo and tests;
    # any deployment sets SECRET_KEY (and BILLING_EMBEDDED=false to enforce it).
    SECRET_KEY = "embedded-insecure-key-set-SECRET_KEY-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # eventbus comes first so its `migrate` (every alias and schema) wins.
    "eventbus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "billing.tenancy",
    "billing.operations",
    "subscriptions",
    "ar",
    "payments",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves files from STATIC_ROOT (run manage.py collectstatic) in production.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "billing.urls"
WSGI_APPLICATION = "billing.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = build_databases(os.environ, DATA_DIR / "db")
DATABASE_ROUTERS = ["billing.router.ModuleRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

EVENTBUS = {
    # "inprocess" delivers inside the relay's process; "nats" uses JetStream.
    "BACKEND": os.environ.get("EVENT_BUS", "inprocess"),
    # A comma-separated list points the client at every node of a cluster.
    "NATS_URLS": env_list("NATS_URL", default=["nats://127.0.0.1:4222"]),
    "STREAM_REPLICAS": env_int("NATS_STREAM_REPLICAS", default=1),
    # JetStream drops a publish whose Nats-Msg-Id it saw within this window,
    # which makes a relay's re-publish after a crash harmless.
    "DUPLICATE_WINDOW_SECONDS": env_int("EVENTBUS_DUPLICATE_WINDOW_SECONDS", default=120),
    "STREAM_MAX_AGE_SECONDS": env_int("EVENTBUS_STREAM_MAX_AGE_SECONDS", default=7 * 24 * 3600),
    "ACK_WAIT_SECONDS": env_float("EVENTBUS_ACK_WAIT_SECONDS", default=30.0),
    "MAX_DELIVER": env_int("EVENTBUS_MAX_DELIVER", default=5),
    # Delay before redelivery n+1 after a handler error on delivery n.
    "BACKOFF_SECONDS": [
        float(value) for value in env_list("EVENTBUS_BACKOFF_SECONDS", default=["1", "5", "30", "120"])
    ],
    "RELAY_BATCH_SIZE": env_int("EVENTBUS_RELAY_BATCH_SIZE", default=500),
    "FETCH_BATCH_SIZE": env_int("EVENTBUS_FETCH_BATCH_SIZE", default=100),
    # Worker threads per module in a consumer process, each with its own
    # database connection. One aggregate's messages of a fetch stay on one
    # thread, in stream order.
    "CONSUMER_CONCURRENCY": env_int("EVENTBUS_CONSUMER_CONCURRENCY", default=4),
    # Messages a worker thread applies in one transaction, in stream order
    # for each aggregate. 1 applies each message in its own transaction.
    "CONSUMER_GROUP_SIZE": env_int("EVENTBUS_CONSUMER_GROUP_SIZE", default=20),
    # Published outbox rows are purged after this; it must exceed the
    # duplicate window so a re-publish is still recognised as a duplicate.
    "OUTBOX_RETENTION_SECONDS": env_int("EVENTBUS_OUTBOX_RETENTION_SECONDS", default=7 * 24 * 3600),
    "MAX_EVENT_BYTES": env_int("EVENTBUS_MAX_EVENT_BYTES", default=256 * 1024),
}

# Outgoing customer email; console:// prints messages to standard output.
globals().update(email_settings(os.environ.get("EMAIL_URL", "console://")))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing@example.com")
# Seconds each SMTP socket operation may block (Django's default is no
# limit). It stays below the 60 s after which the pending-notification sweep
# takes over an unfinished send, so a stalled server fails the send instead.
EMAIL_TIMEOUT = 30

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# A Celery worker serves Prometheus metrics on this port once ready (0: no
# server); billing.observability.worker. The host 0.0.0.0 listens on every interface.
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_HOST = os.environ.get("WORKER_METRICS_HOST", "127.0.0.1")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"

# Payments. PAYMENTS_GATEWAY is "simulated" (test tokens, no real money) or
# the dotted path of a payments.gateways.base.PaymentGateway subclass.
PAYMENTS_GATEWAY = os.environ.get("PAYMENTS_GATEWAY", "simulated")
# Days after a payment's first failed attempt on which it is retried.
# payments.conf validates the entries.
PAYMENTS_RETRY_SCHEDULE_DAYS = env_list("PAYMENTS_RETRY_SCHEDULE_DAYS", default=["1", "3", "5"])
# Seconds the simulated gateway takes to charge the token tok_slow.
PAYMENTS_SIMULATED_SLOW_SECONDS = env_float("PAYMENTS_SIMULATED_SLOW_SECONDS", default=5.0)
# The retry runner resumes an attempt in processing this long, so the value
# must exceed the gateway's longest response time.
PAYMENTS_PROCESSING_STALE_SECONDS = env_int("PAYMENTS_PROCESSING_STALE_SECONDS", default=600)

LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not a log format; use plain or json")

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(
        f"LOG_LEVEL={os.environ['LOG_LEVEL']!r} is not a log level; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # Fields passed in `extra` (event_id, event_type, tenant_id,
        # correlation_id, ...) become keys of the JSON object.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# Celery beat: relay every module's outbox each second. The relay lock makes
# a tick that overlaps the previous one return at once, and `expires` drops
# ticks that waited in the queue longer than a few seconds.
CELERY_BEAT_SCHEDULE = {
    **{
        f"relay-{module}-outbox": {
            "task": "eventbus.relay_outbox",
            "schedule": 1.0,
            "args": (module,),
            "options": {"expires": 5},
        }
        for module in DOMAIN_MODULES
    },
    "purge-published-outbox-rows": {"task": "eventbus.purge_outboxes", "schedule": 24 * 3600.0},
    # Hourly is fine-grained enough for a retry schedule counted in days.
    # `expires` drops a tick that waited 50 minutes, as the next one is close.
    # Bill every due period once a day, shortly after midnight UTC.
    "scheduled-bill-run": {
        "task": "subscriptions.scheduled_bill_run",
        "schedule": crontab(minute=5, hour=0),
        "options": {"expires": 6 * 3600},
    },
    "retry-due-payments": {
        "task": "payments.retry_due_payments",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # Send the emails a crashed sender left pending. The task skips rows
    # attempted in the last 60 s, which leaves a send in progress alone as
    # long as the email backend times out sooner (EMAIL_TIMEOUT).
    "send-pending-notifications": {
        "task": "notifications.send_pending",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
}

# REST API under /api/v1/ (billing/api).
INSTALLED_APPS += ["django_filters", "drf_spectacular", "drf_spectacular_sidecar"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["billing.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["billing.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "billing.api.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["billing.api.throttling.ApiKeyRateThrottle"],
    # Per API key. 600 a minute (10 a second) covers a client syncing its
    # catalogue or polling invoices, and stops a runaway loop from starving
    # other tenants. The count lives in the cache, so it is per process with
    # the default local-memory cache.
    "DEFAULT_THROTTLE_RATES": {"api_key": env_throttle_rate("API_RATE_PER_KEY", default="600/minute")},
    "EXCEPTION_HANDLER": "billing.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "billing.api.schema.ApiAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Billing platform API",
    "DESCRIPTION": "Customers, plans, subscriptions, bill runs, invoices, payments and the event bus.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from this project's static files instead of a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}
# Request bodies above this many bytes are rejected with 413; the largest
# real body (a plan or a customer) is under 1 KiB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024)
# Relay the outboxes after each successful API write, so work started through
# the API finishes in the web process when no relay or consumer runs.
API_DRAIN_OUTBOXES_AFTER_WRITE = env_bool(
    "API_DRAIN_OUTBOXES_AFTER_WRITE", default=EVENTBUS["BACKEND"] == "inprocess"
)
MIDDLEWARE += ["billing.api.middleware.OutboxDrainMiddleware"]

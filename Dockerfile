# One image for every process of the billing platform: web (gunicorn),
# worker and beat (Celery), consumers (manage.py run_consumers) and the
# one-off migrate. docker-compose.yml picks the command of each.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system billing \
    && useradd --system --gid billing --home-dir /app --shell /usr/sbin/nologin billing

WORKDIR /app

# Dependencies first, so a code change reuses this layer. psycopg[binary]
# bundles libpq, so no system packages are needed.
COPY pyproject.toml ./
COPY billing ./billing
COPY eventbus ./eventbus
COPY subscriptions ./subscriptions
COPY ar ./ar
COPY payments ./payments
COPY notifications ./notifications
RUN pip install .

COPY manage.py ./
COPY deploy ./deploy

# The admin's static files, served by WhiteNoise from STATIC_ROOT
# (BILLING_DATA_DIR/static). The embedded defaults suffice to collect them.
ENV BILLING_DATA_DIR=/app/var
RUN python manage.py collectstatic --noinput \
    && mkdir -p /tmp/prometheus \
    && chown -R billing:billing /app/var /tmp/prometheus

USER billing

EXPOSE 8000
CMD ["gunicorn", "billing.wsgi", "--config", "deploy/gunicorn.conf.py"]

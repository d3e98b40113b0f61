import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from billing.tenancy.models import TENANT_ID_PATTERN, ApiKey, IdempotencyRecord, Tenant


class InvalidTenant(ValueError):
    code = "invalid_tenant"


def tenant_ensure(*, tenant_id: str, name: str = "", now: datetime) -> Tenant:
    """Return the tenant ``tenant_id``, creating it when it does not exist yet."""
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.match(tenant_id):
        raise InvalidTenant(
            f"tenant id {tenant_id!r} is invalid; use 1 to 63 lower-case letters, digits and hyphens"
        )
    with transaction.atomic(using="default"):
        tenant, _ = Tenant.objects.using("default").get_or_create(
            id=tenant_id, defaults={"name": name or tenant_id, "created_at": now}
        )
    return tenant


class ApiKeyNotFound(LookupError):
    code = "api_key_not_found"


class IdempotencyKeyInUse(Exception):
    """A request with the same idempotency key is still running."""

    code = "idempotency_key_in_use"


# Bytes of randomness in an API key secret: 256 bits, beyond any brute force.
API_KEY_SECRET_BYTES = 32
API_KEY_PREFIX_LENGTH = 12
API_KEY_SECRET_MARKER = "bk_"
# An unfinished idempotency claim older than this is taken as abandoned by a
# crashed process. It exceeds the longest request expected, a large tenant's
# bill run, and gunicorn's default 30 s worker timeout by far.
IDEMPOTENCY_CLAIM_TIMEOUT = timedelta(minutes=15)


def api_key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(
    *, tenant_id: str, name: str = "", is_staff: bool = False, now: datetime
) -> tuple[ApiKey, str]:
    """Create an API key for an existing tenant; return it and its secret, which is not stored.

    Raises ``InvalidTenant`` when the tenant does not exist.
    """
    if not Tenant.objects.using("default").filter(id=tenant_id).exists():
        raise InvalidTenant(f"tenant {tenant_id!r} does not exist; create it first")

    secret = API_KEY_SECRET_MARKER + secrets.token_urlsafe(API_KEY_SECRET_BYTES)
    with transaction.atomic(using="default"):
        api_key = ApiKey.objects.using("default").create(
            tenant_id=tenant_id,
            name=name,
            prefix=secret[:API_KEY_PREFIX_LENGTH],
            secret_sha256=api_key_digest(secret),
            is_staff=is_staff,
            created_at=now,
        )
    return api_key, secret


def api_key_revoke(*, api_key_id: int, now: datetime) -> ApiKey:
    """Revoke the key so it no longer authenticates; revoking twice keeps the first time."""
    with transaction.atomic(using="default"):
        api_key = ApiKey.objects.using("default").select_for_update().filter(id=api_key_id).first()
        if api_key is None:
            raise ApiKeyNotFound(f"API key {api_key_id} does not exist")
        if api_key.revoked_at is None:
            api_key.revoked_at = now
            api_key.save(using="default", update_fields=["revoked_at"])
    return api_key


def idempotency_record_reserve(
    *, tenant_id: str, key: str, request_sha256: str, now: datetime
) -> tuple[IdempotencyRecord, bool]:
    """Claim ``key`` for a request; return the record and whether this call claimed it.

    An existing record is returned unchanged, so the caller can replay its
    response or reject a different request. The exception is a claim for the
    same request left unfinished for ``IDEMPOTENCY_CLAIM_TIMEOUT`` by a
    process that died: this call takes it over.
    """
    records = IdempotencyRecord.objects.using("default")
    try:
        with transaction.atomic(using="default"):
            record = records.create(tenant_id=tenant_id, key=key, request_sha256=request_sha256, created_at=now)
        return record, True
    except IntegrityError:
        record = records.get(tenant_id=tenant_id, key=key)

    abandoned = (
        record.response_status is None
        and record.request_sha256 == request_sha256
        and record.created_at <= now - IDEMPOTENCY_CLAIM_TIMEOUT
    )
    if abandoned:
        # The filter on created_at lets only one of several concurrent retries take it over.
        with transaction.atomic(using="default"):
            taken = records.filter(id=record.id, created_at=record.created_at, response_status=None).update(
                created_at=now
            )
        if taken:
            record.created_at = now
            return record, True
    return record, False


def idempotency_record_complete(*, record_id: int, status: int, body) -> None:
    """Store the response that later requests with the same key get again."""
    with transaction.atomic(using="default"):
        IdempotencyRecord.objects.using("default").filter(id=record_id).update(
            response_status=status, response_body=body
        )


def idempotency_record_release(*, record_id: int) -> None:
    """Drop a claim whose request failed, so the client can retry with the same key."""
    with transaction.atomic(using="default"):
        IdempotencyRecord.objects.using("default").filter(id=record_id).delete()

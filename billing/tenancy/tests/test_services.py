from datetime import timedelta

import pytest

from billing.api.tests.support import NOW
from billing.tenancy.models import ApiKey
from billing.tenancy.selectors import api_key_for_secret
from billing.tenancy.services import (
    IDEMPOTENCY_CLAIM_TIMEOUT,
    InvalidTenant,
    api_key_create,
    api_key_revoke,
    idempotency_record_complete,
    idempotency_record_reserve,
    tenant_ensure,
)

pytestmark = pytest.mark.django_db(databases="__all__")


class TestApiKeys:
    def test_create_then_revoke(self):
        tenant_ensure(tenant_id="acme", now=NOW)
        api_key, secret = api_key_create(tenant_id="acme", name="ci", now=NOW)

        found = api_key_for_secret(secret=secret)
        api_key_revoke(api_key_id=api_key.id, now=NOW)

        assert found == api_key
        assert secret.startswith("bk_")
        assert api_key_for_secret(secret=secret) is None

    def test_unknown_tenant_rejected(self):
        with pytest.raises(InvalidTenant, match="tenant 'nobody' does not exist; create it first"):
            api_key_create(tenant_id="nobody", now=NOW)
        assert ApiKey.objects.count() == 0


class TestIdempotencyRecordReserve:
    def setup_method(self):
        tenant_ensure(tenant_id="acme", now=NOW)

    def test_second_claim_gets_existing(self):
        first, first_claimed = idempotency_record_reserve(tenant_id="acme", key="k", request_sha256="a", now=NOW)
        second, second_claimed = idempotency_record_reserve(tenant_id="acme", key="k", request_sha256="a", now=NOW)

        assert first_claimed is True
        assert second_claimed is False
        assert second.id == first.id

    def test_abandoned_claim_taken_over(self):
        first, _ = idempotency_record_reserve(tenant_id="acme", key="k", request_sha256="a", now=NOW)
        later = NOW + IDEMPOTENCY_CLAIM_TIMEOUT

        record, claimed = idempotency_record_reserve(tenant_id="acme", key="k", request_sha256="a", now=later)

        assert claimed is True
        assert record.id == first.id

    def test_recent_or_finished_claim_kept(self):
        idempotency_record_reserve(tenant_id="acme", key="k", request_sha256="a", now=NOW)
        done, _ = idempotency_record_reserve(tenant_id="acme", key="done", request_sha256="a", now=NOW)
        idempotency_record_complete(record_id=done.id, status=201, body={"id": 1})
        later = NOW + IDEMPOTENCY_CLAIM_TIMEOUT

        _, recent_claimed = idempotency_record_reserve(
            tenant_id="acme", key="k", request_sha256="a", now=NOW + timedelta(minutes=1)
        )
        _, finished_claimed = idempotency_record_reserve(tenant_id="acme", key="done", request_sha256="a", now=later)
        _, other_body_claimed = idempotency_record_reserve(tenant_id="acme", key="k", request_sha256="b", now=later)

        assert recent_claimed is False
        assert finished_claimed is False
        assert other_body_claimed is False

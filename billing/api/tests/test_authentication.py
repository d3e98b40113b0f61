from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from billing.api.tests.support import NOW, api_client
from billing.tenancy.models import ApiKey
from billing.tenancy.services import api_key_create, api_key_revoke, tenant_ensure

pytestmark = pytest.mark.django_db(databases="__all__")


def client_with(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


class TestApiKeyAuthentication:
    def test_missing_key_gets_401(self):
        response = APIClient().get("/api/v1/customers")

        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"
        assert response.json() == {
            "error": {
                "code": "not_authenticated",
                "message": "Authentication credentials were not provided.",
                "fields": {},
            }
        }

    def test_revoked_key_gets_401(self):
        tenant_ensure(tenant_id="acme", now=NOW)
        api_key, secret = api_key_create(tenant_id="acme", now=NOW)
        api_key_revoke(api_key_id=api_key.id, now=NOW)

        response = client_with(f"Bearer {secret}").get("/api/v1/customers")

        assert response.status_code == 401
        assert response.json()["error"] == {
            "code": "authentication_failed",
            "message": "the API key is invalid or revoked",
            "fields": {},
        }

    def test_unknown_key_gets_401(self):
        response = client_with("Bearer bk_not-a-key").get("/api/v1/customers")

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"

    def test_other_scheme_gets_401(self):
        response = client_with("Basic dXNlcjpwYXNz").get("/api/v1/customers")

        assert response.status_code == 401
        assert response.json()["error"]["message"] == (
            "the Authorization header is malformed; send 'Authorization: Bearer <API key>'"
        )

    def test_valid_key_gets_200(self):
        assert api_client().get("/api/v1/customers").status_code == 200

    def test_only_digest_is_stored(self):
        tenant_ensure(tenant_id="acme", now=NOW)
        api_key, secret = api_key_create(tenant_id="acme", now=NOW)

        stored = ApiKey.objects.get(id=api_key.id)

        assert secret.startswith(stored.prefix)
        assert secret not in stored.secret_sha256
        assert len(stored.secret_sha256) == 64


class TestCreateApiKeyCommand:
    def test_prints_key_that_authenticates(self, capsys):
        tenant_ensure(tenant_id="acme", now=NOW)

        call_command("create_api_key", "--tenant", "acme", "--name", "ci", "--staff")
        secret = capsys.readouterr().out.strip().splitlines()[-1]

        assert client_with(f"Bearer {secret}").get("/api/v1/customers").status_code == 200
        assert ApiKey.objects.get().is_staff is True
        assert ApiKey.objects.get().name == "ci"

    def test_unknown_tenant_fails(self):
        with pytest.raises(CommandError, match="tenant 'nobody' does not exist; create it first"):
            call_command("create_api_key", "--tenant", "nobody")
        assert ApiKey.objects.count() == 0


class TestRevokeApiKeyCommand:
    def test_revoked_key_gets_401(self):
        tenant_ensure(tenant_id="acme", now=NOW)
        api_key, secret = api_key_create(tenant_id="acme", now=NOW)

        call_command("revoke_api_key", "--id", str(api_key.id), "--yes")

        assert client_with(f"Bearer {secret}").get("/api/v1/customers").status_code == 401

    def test_needs_yes(self):
        tenant_ensure(tenant_id="acme", now=NOW)
        api_key, _ = api_key_create(tenant_id="acme", now=NOW)

        with pytest.raises(CommandError, match="pass --yes to confirm"):
            call_command("revoke_api_key", "--id", str(api_key.id))
        assert ApiKey.objects.get().revoked_at is None

    def test_unknown_id_fails(self):
        with pytest.raises(CommandError) as raised:
            call_command("revoke_api_key", "--id", "404", "--yes")

        assert str(raised.value).startswith("API key 404 does not exist")
        assert str(raised.value).endswith("; list a tenant's keys with manage.py list_api_keys --tenant ID")


class TestListApiKeysCommand:
    def test_lists_keys_without_secrets(self):
        tenant_ensure(tenant_id="acme", now=NOW)
        kept, kept_secret = api_key_create(tenant_id="acme", name="erp sync", now=NOW)
        revoked, revoked_secret = api_key_create(tenant_id="acme", now=NOW)
        api_key_revoke(api_key_id=revoked.id, now=NOW)
        output = StringIO()

        call_command("list_api_keys", "--tenant", "acme", stdout=output)

        lines = output.getvalue().splitlines()
        assert lines == [
            "id\tprefix\tname\tstaff\tcreated_at\trevoked_at",
            f"{kept.id}\t{kept.prefix}...\terp sync\tno\t{NOW.isoformat()}\t-",
            f"{revoked.id}\t{revoked.prefix}...\t-\tno\t{NOW.isoformat()}\t{NOW.isoformat()}",
        ]
        assert kept_secret not in output.getvalue()
        assert revoked_secret not in output.getvalue()

    def test_unknown_tenant_fails(self):
        with pytest.raises(CommandError, match="tenant 'nobody' does not exist; check the id with manage.py tenants list"):
            call_command("list_api_keys", "--tenant", "nobody")

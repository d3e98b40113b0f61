import re

from django.core.validators import RegexValidator
from django.db import models

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Tenant(models.Model):
    """A business using the platform; every domain row carries its ``tenant_id``."""

    id = models.CharField(
        primary_key=True,
        max_length=63,
        validators=[RegexValidator(TENANT_ID_PATTERN, "use lower-case letters, digits and hyphens")],
    )
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField()

    def __str__(self):
        return self.id


class ApiKey(models.Model):
    """A secret that authenticates REST API requests as one tenant.

    Only the SHA-256 digest of the secret is stored. The secret is 32 random
    bytes, so it cannot be guessed or brute-forced from its digest, and a slow
    password hash (PBKDF2, Argon2) would add cost to every request without
    adding safety. ``prefix`` is the start of the secret, kept so a list of
    keys can show which one is which.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16)
    secret_sha256 = models.CharField(max_length=64, unique=True)
    # Staff keys may also replay and discard dead letters, of every tenant.
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.prefix}... ({self.tenant_id}, {self.name or 'unnamed'})"


class IdempotencyRecord(models.Model):
    """The first response to a POST sent with an ``Idempotency-Key`` header.

    A repeat of the key with the same request hash gets this response again
    instead of a second write.

    NOTE: nothing purges old records yet, so the table grows by one row per
    keyed POST; purge rows older than a client's retry window (a day is
    common) once the table's size matters.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of the method, path and body, so a reused key with another request is rejected.
    request_sha256 = models.CharField(max_length=64)
    # NULL while the first request is still running.
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="tenancy_idempotency_key_per_tenant"),
        ]

    def __str__(self):
        return f"{self.key} ({self.tenant_id})"

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

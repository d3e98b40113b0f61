"""Test settings: the project's settings plus the probe module used by bus tests."""

import os

from billing.settings import *  # noqa: F403
from billing.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.probe"]
# The probe module's tables live in the notifications alias (and schema).
EXTRA_APP_ALIASES = {"probe": "notifications"}

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Processes that tests start (consumers, relays) work on the test databases
# the test session created, not on the databases those are named after.
if os.environ.get("BILLING_ON_TEST_DATABASES") == "1":
    for _config in DATABASES.values():
        if "TEST" in _config and _config["TEST"].get("NAME"):
            _config["NAME"] = _config["TEST"]["NAME"]

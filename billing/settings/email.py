"""Build Django's email settings from ``EMAIL_URL``."""

from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_BACKENDS = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "smtps": "django.core.mail.backends.smtp.EmailBackend",
    "submission": "django.core.mail.backends.smtp.EmailBackend",
}


def email_settings(url: str) -> dict:
    """Return EMAIL_* settings for ``url``.

    Forms: ``console://`` (the default), ``locmem://``, ``dummy://``,
    ``file:///var/mail/billing``, ``smtp://user:password@host:25``,
    ``smtp://host:587?tls=true``, ``smtps://user:password@host:465`` (implicit TLS).
    """
    parsed = urlparse(url)
    if parsed.scheme not in _BACKENDS:
        raise ImproperlyConfigured(
            f"EMAIL_URL={url!r} has an unknown scheme; use one of {', '.join(sorted(_BACKENDS))}"
        )
    result = {"EMAIL_BACKEND": _BACKENDS[parsed.scheme]}
    if parsed.scheme == "file":
        if not parsed.path:
            raise ImproperlyConfigured(f"EMAIL_URL={url!r} needs a folder: file:///path/to/folder")
        result["EMAIL_FILE_PATH"] = parsed.path
    elif parsed.scheme in ("smtp", "smtps", "submission"):
        query = parse_qs(parsed.query)
        result.update(
            EMAIL_HOST=parsed.hostname or "localhost",
            EMAIL_PORT=parsed.port or {"smtps": 465, "submission": 587}.get(parsed.scheme, 25),
            EMAIL_HOST_USER=unquote(parsed.username or ""),
            EMAIL_HOST_PASSWORD=unquote(parsed.password or ""),
            EMAIL_USE_SSL=parsed.scheme == "smtps",
            EMAIL_USE_TLS=parsed.scheme == "submission" or query.get("tls", ["false"])[0] == "true",
        )
    return result

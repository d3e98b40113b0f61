"""The domain modules and the database alias and PostgreSQL schema each one owns."""

# Order matters only for output: bill runs start in subscriptions and flow on.
DOMAIN_MODULES: tuple[str, ...] = ("subscriptions", "ar", "payments", "notifications")


def database_alias_for_app(app_label: str) -> str:
    """Return the database alias that stores the tables of ``app_label``.

    ``settings.EXTRA_APP_ALIASES`` places further apps, such as the tests'
    probe app, in a module's alias.
    """
    from django.conf import settings

    if app_label in DOMAIN_MODULES:
        return app_label
    return getattr(settings, "EXTRA_APP_ALIASES", {}).get(app_label, "default")


def schema_for_alias(alias: str) -> str:
    """Return the PostgreSQL schema that contains the tables of ``alias``."""
    if alias in DOMAIN_MODULES:
        return alias
    return "public"

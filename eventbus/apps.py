from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


class EventbusConfig(AppConfig):
    name = "eventbus"
    verbose_name = "Event bus"

    def ready(self):
        # After every migrate of a database alias, so each outbox created or
        # rebuilt there notifies a following relay of new rows and is
        # vacuumed often enough for the relay's claim query.
        post_migrate.connect(install_outbox_triggers, sender=self)


def install_outbox_triggers(*, using: str, **kwargs) -> None:
    """Install the NOTIFY trigger and autovacuum settings on every outbox table in database ``using``."""
    from eventbus.registry import all_modules
    from eventbus.wakeup import install_notify_trigger, tune_outbox_autovacuum

    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    tables = set(connection.introspection.table_names())
    for module in all_modules():
        if module.alias == using and module.outbox._meta.db_table in tables:
            install_notify_trigger(module)
            tune_outbox_autovacuum(module)

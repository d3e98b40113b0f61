from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from eventbus.registry import BusModule, register_module
        from notifications import handlers, models

        register_module(
            BusModule(
                name="notifications",
                alias="notifications",
                outbox=models.OutboxEvent,
                inbox=models.ProcessedEvent,
                dead_letters=models.DeadLetter,
                handlers=handlers.registry,
            )
        )

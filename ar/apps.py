from django.apps import AppConfig


class ArConfig(AppConfig):
    name = "ar"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from ar import handlers, models
        from eventbus.registry import BusModule, register_module

        register_module(
            BusModule(
                name="ar",
                alias="ar",
                outbox=models.OutboxEvent,
                inbox=models.ProcessedEvent,
                dead_letters=models.DeadLetter,
                handlers=handlers.registry,
            )
        )

from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from eventbus.registry import BusModule, register_module
        from subscriptions import handlers, models

        register_module(
            BusModule(
                name="subscriptions",
                alias="subscriptions",
                outbox=models.OutboxEvent,
                inbox=models.ProcessedEvent,
                dead_letters=models.DeadLetter,
                handlers=handlers.registry,
            )
        )

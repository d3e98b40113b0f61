from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from eventbus.registry import BusModule, register_module
        from payments import handlers, models

        register_module(
            BusModule(
                name="payments",
                alias="payments",
                outbox=models.OutboxEvent,
                inbox=models.ProcessedEvent,
                dead_letters=models.DeadLetter,
                handlers=handlers.registry,
            )
        )

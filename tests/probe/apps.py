from django.apps import AppConfig


class ProbeConfig(AppConfig):
    name = "tests.probe"
    label = "probe"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from eventbus.registry import BusModule, register_module
        from tests.probe import handlers, models

        register_module(
            BusModule(
                name="probe",
                alias="notifications",
                outbox=models.OutboxEvent,
                inbox=models.ProcessedEvent,
                dead_letters=models.DeadLetter,
                handlers=handlers.registry,
            )
        )

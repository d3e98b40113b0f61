from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "billing.operations"
    label = "operations"
    verbose_name = "Operations"

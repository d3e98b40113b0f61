"""``migrate`` for every database alias: each module's schema, then its tables."""

from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import connections

from billing.modules import schema_for_alias


class Command(DjangoMigrateCommand):
    help = (
        "Create each module's PostgreSQL schema and apply migrations on every database alias "
        "(or only on --database)."
    )

    # call_command("migrate", database=...) migrates only that alias, as
    # Django's test database setup expects; the command line without
    # --database migrates every alias.
    migrate_every_alias = False

    def run_from_argv(self, argv):
        self.migrate_every_alias = not any(
            arg == "--database" or arg.startswith("--database=") for arg in argv
        )
        super().run_from_argv(argv)

    def handle(self, *args, **options):
        aliases = list(connections) if self.migrate_every_alias else [options["database"]]
        for alias in aliases:
            ensure_schema(alias)
            if options["verbosity"] >= 1 and len(aliases) > 1:
                self.stdout.write(self.style.MIGRATE_HEADING(f"Database alias {alias!r}:"))
            super().handle(*args, **{**options, "database": alias})


def ensure_schema(alias: str) -> None:
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return
    schema = schema_for_alias(alias)
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')

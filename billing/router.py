"""Route every model to the database alias of the module that owns it."""

from billing.modules import database_alias_for_app


class ModuleRouter:
    """Send each app's reads, writes and migrations to its module's alias.

    Relations are allowed only inside one alias, so no foreign key can cross
    modules: a module refers to another module's rows by id.
    """

    def db_for_read(self, model, **hints):
        return database_alias_for_app(model._meta.app_label)

    def db_for_write(self, model, **hints):
        return database_alias_for_app(model._meta.app_label)

    def allow_relation(self, obj1, obj2, **hints):
        return database_alias_for_app(obj1._meta.app_label) == database_alias_for_app(
            obj2._meta.app_label
        )

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == database_alias_for_app(app_label)

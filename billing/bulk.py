"""Write many rows of one model with one statement."""

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from django.db import connections
from django.db.models import Model

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def group_by(items: Sequence[T], key: Callable[[T], K]) -> list[tuple[K, list[T]]]:
    """Return ``items`` grouped by ``key(item)``, the groups and the items in each in the order of ``items``.

    Rows that get the same new values can then share one UPDATE.
    """
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.items())


def update_rows(objects: Sequence[Model], fields: Sequence[str], *, using: str) -> None:
    """Write ``fields`` of each of ``objects`` to its row, found by primary key.

    On PostgreSQL one ``UPDATE ... FROM (VALUES ...)`` writes every row. Django's
    ``bulk_update`` builds a CASE expression for each field and row, which for
    a few dozen rows costs more Python time than running the statement. Other
    databases use ``bulk_update``.
    """
    if not objects:
        return
    model = type(objects[0])
    connection = connections[using]
    if connection.vendor != "postgresql":
        model._default_manager.using(using).bulk_update(objects, fields)
        return

    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    quote_name = connection.ops.quote_name
    # The casts leave out length limits such as varchar(64): an explicit cast
    # cuts a longer value silently, whereas assigning it to the column fails.
    row = "(" + ", ".join(f"CAST(%s AS {_unlimited(field.cast_db_type(connection))})" for field in columns) + ")"
    names = [f"c{number}" for number in range(len(columns))]
    assignments = ", ".join(
        f"{quote_name(field.column)} = v.{name}" for field, name in zip(columns[1:], names[1:], strict=True)
    )
    values = [
        field.get_db_prep_save(getattr(item, field.attname), connection) for item in objects for field in columns
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote_name(meta.db_table)} AS t SET {assignments} "
            f"FROM (VALUES {', '.join([row] * len(objects))}) AS v({', '.join(names)}) "
            f"WHERE t.{quote_name(meta.pk.column)} = v.{names[0]}",
            values,
        )


def _unlimited(db_type: str) -> str:
    """Return ``db_type`` without its length or precision, such as varchar for varchar(64)."""
    return db_type.split("(")[0]


# Rows per INSERT of ``insert_new``; SQLite allows 32,766 parameters per statement.
INSERT_BATCH_SIZE = 500


def insert_new(objects: Sequence[Model], *, using: str, unique_fields: Sequence[str] = ()) -> set:
    """Insert each of ``objects`` that conflicts with no existing row; return the primary keys inserted.

    Every object must have its primary key set. One ``INSERT ... ON CONFLICT
    DO NOTHING RETURNING`` per 500 objects takes the place of a savepoint, an
    INSERT and a release for each, and, unlike ``bulk_create(ignore_conflicts=True)``,
    reports which rows went in. ``unique_fields`` names the unique constraint
    whose conflicts are skipped; without it, a conflict with any unique
    constraint is skipped. A row that another transaction inserted and has
    not committed makes this statement wait for that transaction, and then
    skips the object if that transaction committed. PostgreSQL and SQLite
    3.35 or later run this statement. Inserted objects are marked as saved.
    """
    if not objects:
        return set()
    model = type(objects[0])
    meta = model._meta
    if any(item.pk is None for item in objects):
        raise ValueError(f"insert_new needs the primary key of every {meta.object_name} set before the insert")
    connection = connections[using]
    quote_name = connection.ops.quote_name
    fields = meta.concrete_fields
    columns = ", ".join(quote_name(field.column) for field in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    target = ""
    if unique_fields:
        target = "(" + ", ".join(quote_name(meta.get_field(name).column) for name in unique_fields) + ") "
    inserted = set()
    for start in range(0, len(objects), INSERT_BATCH_SIZE):
        batch = objects[start:start + INSERT_BATCH_SIZE]
        values = [field.get_db_prep_save(field.pre_save(item, add=True), connection) for item in batch for field in fields]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {quote_name(meta.db_table)} ({columns}) VALUES {', '.join([row] * len(batch))} "
                f"ON CONFLICT {target}DO NOTHING RETURNING {quote_name(meta.pk.column)}",
                values,
            )
            inserted.update(meta.pk.to_python(value) for (value,) in cursor.fetchall())
    for item in objects:
        if item.pk in inserted:
            item._state.adding = False
            item._state.db = using
    return inserted

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

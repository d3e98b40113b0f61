"""Helpers for the query-count tests."""

import re

from django.test.utils import CaptureQueriesContext

# The table an INSERT, UPDATE or SELECT statement writes or reads first.
TABLE = re.compile(r'\b(?:INTO|UPDATE|FROM) "(\w+)"')


def statements(queries: CaptureQueriesContext) -> list[str]:
    """Label each captured statement with its verb and first table, e.g. "UPDATE notifications_notification"."""
    labels = []
    for query in queries.captured_queries:
        verb = query["sql"].split(None, 1)[0].upper()
        table = TABLE.search(query["sql"])
        labels.append(f"{verb} {table.group(1)}" if table else verb)
    return labels

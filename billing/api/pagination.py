from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Newest first by ``created_at``; a cursor stays valid while rows are added."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    # Bounds one response to a few hundred kilobytes.
    max_page_size = 200


class StartedCursorPagination(CreatedCursorPagination):
    ordering = ("-started_at", "-id")


class IdCursorPagination(CreatedCursorPagination):
    ordering = ("-id",)

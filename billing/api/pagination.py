from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Newest first by ``created_at``; a cursor stays valid while rows are added.

    An invalid ``page_size`` or ``cursor`` is rejected with 400 instead of
    DRF's default, which ignores a bad page size and returns 404 for a bad cursor.
    """

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    # Bounds one response to a few hundred kilobytes.
    max_page_size = 200

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        f"{raw!r} is not a valid page size; use a whole number from 1 to {self.max_page_size}"
                    ]
                }
            )
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {
                    self.cursor_query_param: [
                        "the cursor is invalid; pass the next or previous link of an earlier page unchanged"
                    ]
                }
            ) from None


class StartedCursorPagination(CreatedCursorPagination):
    ordering = ("-started_at", "-id")


class IdCursorPagination(CreatedCursorPagination):
    ordering = ("-id",)

from rest_framework.permissions import BasePermission


class IsStaffKey(BasePermission):
    """Allow only API keys created with ``--staff``."""

    message = "this endpoint needs a staff API key; create one with manage.py create_api_key --staff"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)

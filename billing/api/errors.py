"""Turn every error into one JSON shape.

``{"error": {"code": "...", "message": "...", "fields": {"field": ["message"]}}}``

``fields`` is empty unless the request body or query had invalid fields.
Domain errors keep their module's stable ``code``; each module's
``api/errors.py`` registers the HTTP status of each of its errors.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from billing.money import InvalidMoney
from billing.tenancy.services import IdempotencyKeyInUse, InvalidTenant

logger = logging.getLogger(__name__)

# Codes of DRF's own exceptions, by class, in place of DRF's default codes.
_DRF_CODES = {
    exceptions.ValidationError: "invalid_request",
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = (
        "this Idempotency-Key was used with a different request; send a new key for a new request"
    )


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


# HTTP status per error class; a subclass gets its nearest registered base's.
_error_statuses: dict[type[Exception], int] = {
    InvalidMoney: status.HTTP_400_BAD_REQUEST,
    InvalidTenant: status.HTTP_400_BAD_REQUEST,
    IdempotencyKeyInUse: status.HTTP_409_CONFLICT,
}


def register_error_statuses(statuses: dict[type[Exception], int]) -> None:
    """Add a module's error classes and their HTTP statuses; each module's ``api/errors.py`` calls it.

    Registration, instead of this file importing every module, keeps the
    modules independent of each other through this shared package.
    """
    _error_statuses.update(statuses)


def exception_handler(exc, context):
    """Return the error-shaped response for ``exc``, or None to let it propagate as a 500."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("the resource does not exist")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "the request body is larger than the limit"),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )

    if isinstance(exc, exceptions.APIException):
        return _api_exception_response(exc)

    for error_class in type(exc).__mro__:
        http_status = _error_statuses.get(error_class)
        if http_status is not None:
            code = getattr(exc, "code", "invalid_request")
            return Response(error_body(code, str(exc)), status=http_status)
    return None


def _api_exception_response(exc: exceptions.APIException) -> Response:
    headers = {}
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header

    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        names = ", ".join(sorted(fields))
        message = f"the request has invalid fields: {names}"
        return Response(error_body(code, message, fields), status=exc.status_code, headers=headers)

    if code is None:
        code = exc.default_code
    message = str(exc.detail)
    if isinstance(exc, exceptions.Throttled):
        message = f"too many requests for this API key; retry in {int(exc.wait or 1)} s"
    return Response(error_body(code, message), status=exc.status_code, headers=headers)


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """Flatten DRF's nested error detail into ``{"lines.0.amount_minor": ["..."]}``."""
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for name, value in detail.items():
            key = "non_field_errors" if name == "non_field_errors" and not prefix else f"{prefix}{name}"
            fields.update(_flatten(value, f"{key}."))
        return fields
    if isinstance(detail, list) and detail and all(not isinstance(item, dict | list) for item in detail):
        return {prefix.rstrip(".") or "non_field_errors": [str(item) for item in detail]}
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            fields.update(_flatten(item, f"{prefix}{index}."))
        return fields
    return {prefix.rstrip(".") or "non_field_errors": [str(detail)]}

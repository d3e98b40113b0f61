"""The base view of every endpoint: tenant scoping and idempotent POSTs."""

import hashlib
import json

from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from billing.api.errors import IdempotencyKeyReused
from billing.tenancy.services import (
    IdempotencyKeyInUse,
    idempotency_record_complete,
    idempotency_record_release,
    idempotency_record_reserve,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_LENGTH = 255


class _Replay(Exception):
    def __init__(self, response: Response):
        self.response = response


class ApiView(GenericAPIView):
    """A view scoped to the API key's tenant whose POSTs honour ``Idempotency-Key``.

    The header is optional: a POST without it runs every time it is sent.
    With it, the first successful (2xx) response is stored per tenant and
    key, a repeat with the same method, path and body bytes gets that
    response again, and a repeat with anything else is rejected with 422. A
    failed request stores nothing, so the client may fix it and retry with
    the same key.
    """

    def tenant_id(self) -> str:
        if getattr(self, "swagger_fake_view", False):
            # drf-spectacular calls get_queryset without a request to find the model.
            return ""
        return self.request.user.tenant_id

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self._idempotency_record = None
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method != "POST" or key is None:
            return

        valid = key.strip() and len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH and key.isascii() and key.isprintable()
        if not valid:
            raise ValidationError(
                {
                    IDEMPOTENCY_HEADER: [
                        f"must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters, such as a UUID"
                    ]
                }
            )
        digest = hashlib.sha256()
        digest.update(f"{request.method} {request.path}\n".encode())
        digest.update(request._request.body)
        record, claimed = idempotency_record_reserve(
            tenant_id=self.tenant_id(), key=key, request_sha256=digest.hexdigest(), now=timezone.now()
        )
        if not claimed:
            if record.request_sha256 != digest.hexdigest():
                raise IdempotencyKeyReused()
            if record.response_status is None:
                raise IdempotencyKeyInUse(
                    f"a request with Idempotency-Key {key!r} is still running; retry when it has finished"
                )
            raise _Replay(Response(record.response_body, status=record.response_status))
        self._idempotency_record = record

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            exc.response["Idempotent-Replayed"] = "true"
            return exc.response
        try:
            return super().handle_exception(exc)
        except Exception:
            # An unhandled error (a 500) skips finalize_response, so release
            # the claim here, or repeats of the key would get 409 until the claim times out.
            record = getattr(self, "_idempotency_record", None)
            if record is not None:
                idempotency_record_release(record_id=record.id)
            raise

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        record = getattr(self, "_idempotency_record", None)
        succeeded = 200 <= response.status_code < 300
        if record is not None:
            if succeeded:
                body = json.loads(json.dumps(response.data, cls=JSONEncoder))
                idempotency_record_complete(record_id=record.id, status=response.status_code, body=body)
            else:
                idempotency_record_release(record_id=record.id)
        return response


def validated_input(serializer_class, request) -> dict:
    """Validate the request body with ``serializer_class``; raise DRF's ValidationError."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def reject_body(request) -> None:
    """Raise ValidationError when an endpoint that takes no body got one."""
    if isinstance(request.data, dict) and request.data:
        raise ValidationError({name: ["unknown field; this endpoint takes no body"] for name in request.data})

"""OpenAPI additions shared by every endpoint: the Idempotency-Key header and error responses."""

import inspect

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from billing.api.permissions import IsStaffKey
from billing.api.serializers import ErrorSerializer


class ApiAutoSchema(AutoSchema):
    def get_description(self):
        # inspect.getdoc would give every view ApiView's docstring, which
        # describes the implementation, not the endpoint.
        method = getattr(self.view, self.method.lower(), None)
        own_doc = self.view.__class__.__dict__.get("__doc__")
        return inspect.cleandoc(method.__doc__ or own_doc or "") if method else ""

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(
                OpenApiParameter(
                    "Idempotency-Key",
                    str,
                    OpenApiParameter.HEADER,
                    required=False,
                    description=(
                        "Optional. A repeat with the same key and body returns the first "
                        "successful response; the same key with another body is rejected with 422."
                    ),
                )
            )
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        error = self._get_response_for_code(
            OpenApiResponse(ErrorSerializer, description="error"), "400", direction=direction
        )
        codes = ["401", "404", "429"]
        if self.method == "POST":
            codes += ["400", "409", "413", "422"]
        if any(permission is IsStaffKey for permission in getattr(self.view, "permission_classes", [])):
            codes.append("403")
        for code in codes:
            responses.setdefault(code, error)
        return responses


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "billing.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key from manage.py create_api_key"}

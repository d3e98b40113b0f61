"""Authenticate REST API requests with ``Authorization: Bearer <API key>``."""

from dataclasses import dataclass

from rest_framework import authentication, exceptions

from billing.tenancy.models import ApiKey
from billing.tenancy.selectors import api_key_for_secret


@dataclass(frozen=True)
class ApiKeyUser:
    """The caller of an API request: the tenant its key belongs to."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def tenant_id(self) -> str:
        return self.api_key.tenant_id

    @property
    def is_staff(self) -> bool:
        return self.api_key.is_staff


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, secret = header.partition(" ")
        if scheme != self.keyword or not secret.strip():
            raise exceptions.AuthenticationFailed(
                "the Authorization header is malformed; send 'Authorization: Bearer <API key>'"
            )
        api_key = api_key_for_secret(secret=secret.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("the API key is invalid or revoked")
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request):
        # A value here makes DRF return 401 rather than 403 for a request without a key.
        return self.keyword

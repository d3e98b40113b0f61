from rest_framework.throttling import SimpleRateThrottle


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Limit requests per API key; requests without a key are limited per client address."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if request.auth is not None:
            ident = f"key-{request.auth.id}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

"""Rate limits for the events API: a pixel key is public in the storefront, so it is throttled."""

from rest_framework.throttling import SimpleRateThrottle

from contacts.models import ApiKey


class PixelKeyRateThrottle(SimpleRateThrottle):
    """Limit requests per pixel key and client address; full keys of server integrations are not limited.

    The counts live in Django's cache: per process with the default local-memory cache, shared
    between processes when MKTAUTO_REDIS_URL configures the Redis cache.
    """

    scope = "pixel"

    def get_cache_key(self, request, view) -> str | None:
        api_key = request.auth
        if not isinstance(api_key, ApiKey) or api_key.scope != ApiKey.Scope.PIXEL:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"{api_key.pk}:{self.get_ident(request)}"}

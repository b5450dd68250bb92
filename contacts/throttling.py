"""Rate limits for the events API: a pixel key is public in the storefront, so it is throttled."""

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from contacts.models import ApiKey


class PixelKeyRateThrottle(SimpleRateThrottle):
    """Limit requests per pixel key and client address; full keys of server integrations are not limited.

    The counts live in Django's cache: per process with the default local-memory cache, shared
    between processes when MKTAUTO_REDIS_URL configures the Redis cache.
    """

    scope = "pixel"

    def get_rate(self) -> str | None:
        # SimpleRateThrottle binds the rates when the module loads; reading them per request lets a
        # changed setting (and a test's override) take effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str | None:
        api_key = request.auth
        if not isinstance(api_key, ApiKey) or api_key.scope != ApiKey.Scope.PIXEL:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"{api_key.pk}:{self.get_ident(request)}"}

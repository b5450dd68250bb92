"""Token authentication for the events API with hashed, scoped API keys."""

import logging

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from contacts.models import ApiKey

logger = logging.getLogger(__name__)

# RFC 9110 makes authentication schemes case-insensitive. "Token" is DRF's own scheme name.
SCHEMES = ("bearer", "token")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Accept ``Authorization: Bearer <key>``; request.auth is the ApiKey row."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple["ApiKeyUser", ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in SCHEMES:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header: send 'Bearer <API key>'."))

        api_key = ApiKey.objects.filter(key_hash=ApiKey.hash_key(header[1])).first()
        if api_key is None:
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        if api_key.revoked:
            logger.warning("revoked API key %s was used", api_key.pk)
            raise exceptions.AuthenticationFailed(_("This API key was revoked; create a new one."))
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
        return (ApiKeyUser(api_key), api_key)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class ApiKeyUser:
    """The caller behind an API key: authenticated, never staff."""

    is_authenticated = True
    is_active = True
    is_staff = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.pk = None

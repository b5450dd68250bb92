"""Token authentication for the events API with hashed, scoped API keys."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from contacts.models import ApiKey


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Accept ``Authorization: Bearer <key>``; request.auth is the ApiKey row."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] not in (self.keyword, "Token"):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header: send 'Bearer <API key>'."))

        api_key = ApiKey.objects.filter(key_hash=ApiKey.hash_key(header[1]), revoked=False).first()
        if api_key is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
        return (ApiKeyUser(api_key), api_key)

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiKeyUser:
    """The caller behind an API key: authenticated, never staff."""

    is_authenticated = True
    is_active = True
    is_staff = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.pk = None

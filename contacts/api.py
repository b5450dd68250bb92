"""The events API: POST one event or a list; all are validated before any is stored.

Every error response has the shape {"errors": [{"index", "field", "message"}]}; ``index`` is the
event's position in the list, or null for a problem with the request as a whole.
"""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from contacts import catalogue
from contacts.ingest import EventError, decode_json, parse_event, store_events
from contacts.models import ApiKey, Event
from contacts.throttling import PixelKeyRateThrottle

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 1000


def error_response(http_status: int, errors: list[dict[str, Any]]) -> Response:
    return Response({"errors": errors}, status=http_status)


def request_error(http_status: int, field: str, message: str) -> Response:
    return error_response(http_status, [{"index": None, "field": field, "message": message}])


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Give DRF's own errors (authentication, method not allowed) the same shape as validation errors."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
    field = "Authorization" if isinstance(exc, (NotAuthenticated, AuthenticationFailed)) else "request"
    response.data = {"errors": [{"index": None, "field": field, "message": str(detail)}]}
    return response


class EventsView(APIView):
    # decode_json below parses the body, because it rejects NaN and reports the position of a
    # syntax error. The parser listed here only declares the accepted type to DRF.
    parser_classes = [JSONParser]
    throttle_classes = [PixelKeyRateThrottle]

    def get_exception_handler(self):
        return api_exception_handler

    def post(self, request: Request) -> Response:
        api_key: ApiKey = request.auth

        try:
            body = request.body
        except RequestDataTooBig:
            return request_error(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                "body",
                _("larger than %(limit)s bytes; send fewer events per request") % {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
            )
        if not body.strip():
            return request_error(status.HTTP_400_BAD_REQUEST, "body", _("empty; send one event object or a list of them"))

        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return request_error(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                "Content-Type",
                _("%(value)s is not supported; send application/json")
                % {"value": repr(content_type) if content_type else _("no content type")},
            )

        try:
            payload = decode_json(body)
        except EventError as error:
            return request_error(status.HTTP_400_BAD_REQUEST, error.field, error.message)

        events = payload if isinstance(payload, list) else [payload]
        if not events:
            return request_error(status.HTTP_400_BAD_REQUEST, "events", _("empty list; send at least one event"))
        if len(events) > MAX_EVENTS_PER_REQUEST:
            return request_error(
                status.HTTP_400_BAD_REQUEST,
                "events",
                _("too many events: %(count)s; send at most %(limit)s per request")
                % {"count": len(events), "limit": MAX_EVENTS_PER_REQUEST},
            )

        # A pixel key sits in storefront JavaScript where anyone can read it, so it may only report
        # browsing and never add identities to a known contact.
        pixel = api_key.scope == ApiKey.Scope.PIXEL
        allowed = catalogue.PIXEL_EVENT_TYPES if pixel else None
        parsed, errors = [], []
        for index, data in enumerate(events):
            try:
                parsed.append(parse_event(data, allowed_types=allowed))
            except EventError as error:
                errors.extend({"index": index, "field": field, "message": message} for field, message in error.problems)
        if errors:
            invalid = len({error["index"] for error in errors})
            logger.info("API key %s: request with %s events rejected, %s invalid", api_key.pk, len(events), invalid)
            return error_response(status.HTTP_400_BAD_REQUEST, errors)

        result = store_events(parsed, Event.Source.API, fill_identities=not pixel)
        logger.info("API key %s: %s events stored, %s duplicates", api_key.pk, len(result.created), result.duplicates)
        return Response(
            {"accepted": len(result.created), "duplicates": result.duplicates, "ids": [event.pk for event in result.created]},
            status=status.HTTP_202_ACCEPTED,
        )

"""The events API: POST one event or a list; all are validated before any is stored."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts import catalogue
from contacts.ingest import EventError, parse_event, store_events
from contacts.models import ApiKey, Event

MAX_EVENTS_PER_REQUEST = 1000


class EventsView(APIView):
    def post(self, request):
        payload = request.data
        events = payload if isinstance(payload, list) else [payload]
        if not events:
            return Response({"errors": [{"index": None, "field": "events", "message": "empty list"}]}, status=400)
        if len(events) > MAX_EVENTS_PER_REQUEST:
            return Response(
                {
                    "errors": [
                        {"index": None, "field": "events", "message": f"at most {MAX_EVENTS_PER_REQUEST} events per request"}
                    ]
                },
                status=400,
            )

        api_key: ApiKey = request.auth
        allowed = catalogue.PIXEL_EVENT_TYPES if api_key.scope == ApiKey.Scope.PIXEL else None
        parsed, errors = [], []
        for index, data in enumerate(events):
            try:
                parsed.append(parse_event(data, allowed_types=allowed))
            except EventError as error:
                errors.append({"index": index, "field": error.field, "message": error.message})
        if errors:
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)

        result = store_events(parsed, Event.Source.API)
        return Response(
            {"accepted": len(result.created), "duplicates": result.duplicates, "ids": [event.pk for event in result.created]},
            status=status.HTTP_202_ACCEPTED,
        )

"""Public endpoints a recipient reaches from a message: open pixel, click redirect, unsubscribe."""

import base64
import logging

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from campaigns import tracking
from campaigns.models import Delivery
from contacts.models import Contact

logger = logging.getLogger(__name__)

TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    try:
        delivery_id = tracking.read_open_token(token)
    except signing.BadSignature:
        raise Http404 from None
    delivery = Delivery.objects.filter(pk=delivery_id).first()
    if delivery is not None:
        tracking.record_open(delivery)
    response = HttpResponse(TRANSPARENT_GIF, content_type="image/gif")
    response["Cache-Control"] = "no-store"
    return response


def click(request: HttpRequest, token: str) -> HttpResponse:
    try:
        delivery_id, url = tracking.read_click_token(token)
    except signing.BadSignature:
        raise Http404 from None
    if not url.startswith(("https://", "http://")):
        raise Http404
    delivery = Delivery.objects.filter(pk=delivery_id).first()
    if delivery is not None:
        tracking.record_click(delivery, url)
    return HttpResponseRedirect(url)


@csrf_exempt  # RFC 8058: mail clients POST the one-click unsubscribe without a CSRF token.
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        contact_id, delivery_id, channel = tracking.read_unsubscribe_token(token)
    except signing.BadSignature:
        raise Http404 from None
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        raise Http404

    if request.method == "POST":
        delivery = Delivery.objects.filter(pk=delivery_id, contact=contact).first() if delivery_id else None
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        proof = f"{'one-click POST' if one_click else 'unsubscribe page'} from {request.META.get('REMOTE_ADDR', '')}"
        tracking.record_unsubscribe(delivery, contact, channel, source="unsubscribe link", proof=proof)
        logger.info("contact %s unsubscribed from %s via %s", contact.pk, channel, "one-click" if one_click else "page")
        return render(request, "campaigns/unsubscribed.html", {"contact": contact, "channel": channel})
    return render(request, "campaigns/unsubscribe.html", {"contact": contact, "channel": channel})

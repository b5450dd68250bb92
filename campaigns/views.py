"""Public endpoints a recipient reaches from a message: open pixel, click redirect, unsubscribe."""

import base64
import logging

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from campaigns import tracking
from campaigns.models import Delivery
from contacts.consent import STATUS_FIELDS
from contacts.models import Channel, ConsentStatus, Contact

logger = logging.getLogger(__name__)

TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@require_safe
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    try:
        delivery_id = tracking.read_open_token(token)
    except tracking.InvalidToken:
        raise Http404 from None
    delivery = Delivery.objects.filter(pk=delivery_id).first()
    if delivery is not None:
        tracking.record_open(delivery)
    response = HttpResponse(TRANSPARENT_GIF, content_type="image/gif")
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def click(request: HttpRequest, token: str) -> HttpResponse:
    # read_click_token accepts only a signed, unchanged absolute http(s) URL, so neither a
    # tampered token nor a javascript: link ever redirects.
    try:
        delivery_id, url = tracking.read_click_token(token)
    except tracking.InvalidToken as error:
        logger.warning("click rejected: %s", error)
        raise Http404 from None
    delivery = Delivery.objects.filter(pk=delivery_id).first()
    if delivery is not None:
        tracking.record_click(delivery, url)
    response = HttpResponseRedirect(url)
    # The tracking token stays out of the destination's Referer header.
    response["Referrer-Policy"] = "no-referrer"
    return response


@csrf_exempt  # RFC 8058: mail clients POST the one-click unsubscribe without a CSRF token.
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """Show the confirmation page on GET and unsubscribe on POST, so link scanners that fetch every URL change no consent."""
    try:
        contact_id, delivery_id, channel = tracking.read_unsubscribe_token(token)
    except tracking.InvalidToken:
        raise Http404 from None
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        raise Http404
    context = {"contact": contact, "channel": channel, "channel_label": Channel(channel).label}

    if request.method == "POST":
        delivery = Delivery.objects.filter(pk=delivery_id, contact=contact).first() if delivery_id else None
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        proof = "{how} from {address}, user agent {agent!r}, delivery {delivery}".format(
            how="RFC 8058 one-click POST" if one_click else "unsubscribe page POST",
            address=request.META.get("REMOTE_ADDR", "unknown address"),
            agent=request.META.get("HTTP_USER_AGENT", "")[:200],
            delivery=delivery_id,
        )
        tracking.record_unsubscribe(delivery, contact, channel, source="unsubscribe link", proof=proof)
        return render(request, "campaigns/unsubscribed.html", context)

    if getattr(contact, STATUS_FIELDS[Channel(channel)]) == ConsentStatus.UNSUBSCRIBED:
        return render(request, "campaigns/unsubscribed.html", context)
    return render(request, "campaigns/unsubscribe.html", context)

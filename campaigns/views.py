"""Endpoints a recipient reaches from a message (open pixel, click redirects, unsubscribe, preferences,
double opt-in confirmation) and the staff preview of a message as one contact."""

import base64
import logging

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from campaigns import confirmation, preferences, tracking
from campaigns.models import Delivery, MessageTemplate, ShortLink
from campaigns.preview import render_preview
from campaigns.rendering import RenderError
from campaigns.traffic import proxy_open_reason, scanner_click_reason
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
        # NOTE: behind a reverse proxy REMOTE_ADDR is the proxy's address, so only the user agent rules apply there.
        reason = proxy_open_reason(request.META.get("HTTP_USER_AGENT", ""), request.META.get("REMOTE_ADDR", ""))
        tracking.record_open(delivery, proxy_reason=reason)
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
        tracking.record_click(delivery, url, scanner_reason=scanner_reason(request, delivery))
    return redirect_without_referrer(url)


@require_safe
def short_link(request: HttpRequest, code: str) -> HttpResponse:
    """Redirect an SMS short link to its stored destination and count the click."""
    link = ShortLink.objects.filter(code=code).select_related("delivery").first()
    if link is None or not tracking.is_redirect_target(link.url):
        raise Http404
    tracking.record_click(link.delivery, link.url, scanner_reason=scanner_reason(request, link.delivery))
    return redirect_without_referrer(link.url)


def scanner_reason(request: HttpRequest, delivery: Delivery) -> str:
    return scanner_click_reason(
        request.META.get("HTTP_USER_AGENT", ""),
        method=request.method or "GET",
        clicked_at=timezone.now(),
        delivered_at=delivery.delivered_at or delivery.sent_at,
    )


def redirect_without_referrer(url: str) -> HttpResponse:
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
    context = {
        "contact": contact,
        "channel": channel,
        "channel_label": Channel(channel).label,
        "preferences_path": reverse("campaigns:preferences", args=[token]),
    }

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


def request_proof(request: HttpRequest, how: str, **details: object) -> str:
    """Describe a consent change's request for the consent record: what, from which address and browser."""
    proof = "{how} from {address}, user agent {agent!r}".format(
        how=how, address=request.META.get("REMOTE_ADDR", "unknown address"), agent=request.META.get("HTTP_USER_AGENT", "")[:200]
    )
    extra = ", ".join(f"{name} {value}" for name, value in details.items())
    return f"{proof}, {extra}" if extra else proof


# The signed token in the URL proves the contact's right to change these choices, as on the
# unsubscribe page. A CSRF token adds nothing, because an attacker without the link cannot forge the token.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def preference_page(request: HttpRequest, token: str) -> HttpResponse:
    """Show the contact's channels; a POST saves the ticked ones, or leaves every channel with "leave"."""
    try:
        contact_id, delivery_id, link_channel = tracking.read_unsubscribe_token(token)
    except tracking.InvalidToken:
        raise Http404 from None
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        raise Http404

    saved = False
    if request.method == "POST":
        delivery = Delivery.objects.filter(pk=delivery_id, contact=contact).first() if delivery_id else None
        proof = request_proof(request, "preference page POST", delivery=delivery_id, link=link_channel)
        if "leave" in request.POST:
            preferences.leave_everything(contact, delivery=delivery, link_channel=link_channel, proof=proof)
        else:
            chosen = {channel for channel in request.POST.getlist("channel") if channel in Channel.values}
            preferences.save_preferences(contact, chosen, delivery=delivery, link_channel=link_channel, proof=proof)
        contact.refresh_from_db()
        saved = True

    choices = preferences.channel_choices(contact)
    return render(request, "campaigns/preferences.html", {"contact": contact, "choices": choices, "saved": saved})


# As on the unsubscribe page, GET only shows a button, so a link scanner confirms nothing; the token proves the address.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def confirm_subscription(request: HttpRequest, token: str) -> HttpResponse:
    try:
        contact = confirmation.read_confirmation_token(token)
    except confirmation.InvalidConfirmation as error:
        logger.info("confirmation rejected: %s", error)
        return render(request, "campaigns/confirm_invalid.html", status=404)

    if request.method == "POST":
        confirmation.confirm(contact, proof=request_proof(request, "confirmation page POST"))
        contact.refresh_from_db(fields=["email_consent"])
    if contact.email_consent == ConsentStatus.SUBSCRIBED:
        return render(request, "campaigns/confirmed.html", {"contact": contact})
    if contact.email_consent != ConsentStatus.PENDING:
        return render(request, "campaigns/confirm_invalid.html", status=404)
    return render(request, "campaigns/confirm.html", {"contact": contact})


@require_safe
def example_link(request: HttpRequest) -> HttpResponse:
    """Show the target of unsubscribe and confirmation links in previews and test messages, which changes nothing."""
    return render(request, "campaigns/example_link.html")


@staff_member_required
@xframe_options_sameorigin
@require_safe
def preview(request: HttpRequest, template_id: int, contact_id: int) -> HttpResponse:
    """Show the message as the contact would get it; staff with view rights on messages and contacts only."""
    if not (request.user.has_perm("campaigns.view_messagetemplate") and request.user.has_perm("contacts.view_contact")):
        raise PermissionDenied
    template = get_object_or_404(MessageTemplate, pk=template_id)
    contact = get_object_or_404(Contact, pk=contact_id)
    try:
        rendered = render_preview(template, contact)
    except RenderError as error:
        return HttpResponse(str(error), content_type="text/plain; charset=utf-8", status=400)
    if rendered.email is not None:
        return HttpResponse(rendered.email.html)
    return render(request, "campaigns/preview_message.html", {"template": template, "contact": contact, "preview": rendered})

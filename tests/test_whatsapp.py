"""WhatsApp: approved templates by name and language, merge tags in parameters, consent, and Brevo's API."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from campaigns import dispatch
from campaigns.channels.base import ChannelBackend, ChannelMessage, PermanentChannelError, TransientChannelError
from campaigns.channels.brevo import BrevoBackend
from campaigns.checks import check_channel_backends
from campaigns.models import Delivery, MessageTemplate
from campaigns.rendering import RenderError
from campaigns.whatsapp import render_whatsapp
from contacts.consent import set_consent
from contacts.models import ConsentStatus, Contact

SENT: list[ChannelMessage] = []


class MemoryBackend(ChannelBackend):
    def send(self, message: ChannelMessage) -> str:
        SENT.append(message)
        return f"wamid-{len(SENT)}"


@pytest.fixture(autouse=True)
def _english():
    """Validation messages are for staff, read here in English; contacts still get their own language."""
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _memory_backend(settings):
    SENT.clear()
    settings.MKTAUTO_WHATSAPP_BACKEND = "tests.test_whatsapp.MemoryBackend"
    yield
    SENT.clear()


@pytest.fixture
def daan(db) -> Contact:
    """Subscribed to WhatsApp, not to SMS."""
    return Contact.objects.create(
        email="daan@example.com", phone="+31687654321", first_name="Daan", whatsapp_consent=ConsentStatus.SUBSCRIBED
    )


@pytest.fixture
def shipped(db) -> MessageTemplate:
    return MessageTemplate.objects.create(
        name="Verzonden (WhatsApp)",
        channel="whatsapp",
        whatsapp_template_name="order_shipped",
        whatsapp_language="nl",
        whatsapp_parameters={"1": "{{ first_name|default:'daar' }}", "2": "{{ trigger.order_id|default:'je bestelling' }}"},
        whatsapp_provider_template_id=465118589032810,
    )


def queue(contact: Contact, template: MessageTemplate, now) -> Delivery:
    return Delivery.objects.create(
        contact=contact,
        template=template,
        channel=template.channel,
        transactional=template.transactional,
        status=Delivery.Status.QUEUED,
        next_attempt_at=now,
        created_at=now,
    )


# Rendering.


def test_parameters_take_merge_tags(daan, shipped):
    rendered = render_whatsapp(shipped, daan, trigger={"order_id": "#1042"})

    assert rendered.template_name == "order_shipped"
    assert rendered.language == "nl"
    assert rendered.parameters == {"1": "Daan", "2": "#1042"}


def test_parameters_use_fallbacks(shipped):
    rendered = render_whatsapp(shipped, Contact(phone="+31600000001"), trigger={})

    assert rendered.parameters == {"1": "daar", "2": "je bestelling"}


def test_parameter_whitespace_collapsed(daan, shipped):
    shipped.whatsapp_parameters = {"1": "{{ trigger.note }}"}

    rendered = render_whatsapp(shipped, daan, trigger={"note": "Bel\n\naan   bij\tde buren"})

    assert rendered.parameters == {"1": "Bel aan bij de buren"}


def test_empty_parameter_rejected(daan, shipped):
    shipped.whatsapp_parameters = {"1": "{{ trigger.tracking_code }}"}

    with pytest.raises(RenderError, match="WhatsApp parameter '1' is empty"):
        render_whatsapp(shipped, daan, trigger={})


def test_parameters_not_object_rejected(daan, shipped):
    shipped.whatsapp_parameters = ["Daan"]

    with pytest.raises(RenderError, match="must be a JSON object"):
        render_whatsapp(shipped, daan)


# Validation.


def test_clean_requires_name_and_language(db):
    template = MessageTemplate(name="Zonder naam", channel="whatsapp")

    with pytest.raises(ValidationError) as caught:
        template.full_clean()

    assert caught.value.message_dict["whatsapp_template_name"] == [
        "A WhatsApp message needs the name of an approved WhatsApp template."
    ]
    assert caught.value.message_dict["whatsapp_language"] == [
        "A WhatsApp message needs the language of its approved template, e.g. nl."
    ]


def test_clean_rejects_bad_template_name(db, shipped):
    shipped.whatsapp_template_name = "Order Shipped!"

    with pytest.raises(ValidationError) as caught:
        shipped.full_clean()

    assert "whatsapp_template_name" in caught.value.message_dict


def test_clean_rejects_parameter_syntax_error(db, shipped):
    shipped.whatsapp_parameters = {"1": "{% if first_name %}{{ first_name }}"}

    with pytest.raises(ValidationError) as caught:
        shipped.full_clean()

    assert caught.value.message_dict["whatsapp_parameters"][0].startswith("Parameter 1 has a merge tag error")


def test_clean_accepts_valid_template(shipped):
    shipped.full_clean()


# Dispatch.


def test_dispatch_sends_whatsapp(daan, shipped, t0):
    delivery = queue(daan, shipped, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.provider_message_id == "wamid-1"
    assert delivery.to_address == "+31687654321"
    assert SENT[0].template_name == "order_shipped"
    assert SENT[0].parameters == {"1": "Daan", "2": "je bestelling"}
    assert SENT[0].provider_template_id == 465118589032810


def test_whatsapp_without_consent_cancelled(daan, shipped, t0):
    Contact.objects.filter(pk=daan.pk).update(whatsapp_consent=ConsentStatus.UNSUBSCRIBED)
    delivery = queue(daan, shipped, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "no whatsapp consent"
    assert SENT == []


def test_sms_consent_not_enough_for_whatsapp(shipped, t0):
    contact = Contact.objects.create(phone="+31611112222", sms_consent=ConsentStatus.SUBSCRIBED)
    delivery = queue(contact, shipped, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.error == "no whatsapp consent"


def test_whatsapp_unsubscribe_cancels_queued(daan, shipped, t0):
    delivery = queue(daan, shipped, t0)

    set_consent(daan, "whatsapp", ConsentStatus.UNSUBSCRIBED, source="admin")

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "unsubscribed from whatsapp"


def test_whatsapp_empty_parameter_fails(daan, shipped, t0):
    shipped.whatsapp_parameters = {"1": "{{ trigger.tracking_code }}"}
    shipped.save()
    delivery = queue(daan, shipped, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert "WhatsApp parameter '1' is empty" in delivery.error


# Brevo's WhatsApp API, against a stub server on loopback.


@pytest.fixture
def brevo(settings) -> Iterator[list[dict]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls.
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "json": json.loads(body)})
            payload = json.dumps({"messageId": "5b0d880b-b258-4c9c-a31b-1e248d11d66c"}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.MKTAUTO_BREVO_API_URL = f"http://127.0.0.1:{server.server_port}/v3"
    settings.MKTAUTO_BREVO_API_KEY = "xkeysib-test"
    settings.MKTAUTO_WHATSAPP_SENDER_NUMBER = "+31 20 123 4567"
    yield received
    server.shutdown()
    server.server_close()
    thread.join()


def whatsapp_message(**fields) -> ChannelMessage:
    values = {
        "channel": "whatsapp",
        "to": "+31687654321",
        "template_name": "order_shipped",
        "language": "nl",
        "parameters": {"1": "Daan"},
        "provider_template_id": 465118589032810,
    }
    return ChannelMessage(**{**values, **fields})


def test_brevo_whatsapp_request(brevo):
    provider_id = BrevoBackend("whatsapp").send(whatsapp_message())

    assert provider_id == "5b0d880b-b258-4c9c-a31b-1e248d11d66c"
    assert brevo[0]["path"] == "/v3/whatsapp/sendMessage"
    assert brevo[0]["json"] == {
        "senderNumber": "31201234567",
        "contactNumbers": ["31687654321"],
        "templateId": 465118589032810,
        "params": {"1": "Daan"},
    }


def test_brevo_whatsapp_needs_template_id(brevo):
    with pytest.raises(PermanentChannelError, match="has no Brevo template id"):
        BrevoBackend("whatsapp").send(whatsapp_message(provider_template_id=None))

    assert brevo == []


def test_brevo_whatsapp_needs_sender(brevo, settings):
    settings.MKTAUTO_WHATSAPP_SENDER_NUMBER = ""

    with pytest.raises(TransientChannelError, match="no WhatsApp sender number"):
        BrevoBackend("whatsapp").send(whatsapp_message())


def test_dispatch_whatsapp_through_brevo(brevo, daan, shipped, t0, settings):
    settings.MKTAUTO_WHATSAPP_BACKEND = "campaigns.channels.brevo.BrevoBackend"
    delivery = queue(daan, shipped, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.provider_message_id == "5b0d880b-b258-4c9c-a31b-1e248d11d66c"
    assert brevo[0]["json"]["params"] == {"1": "Daan", "2": "je bestelling"}


def test_brevo_whatsapp_without_sender_warned(settings):
    settings.MKTAUTO_WHATSAPP_BACKEND = "campaigns.channels.brevo.BrevoBackend"
    settings.MKTAUTO_BREVO_API_KEY = "xkeysib-test"
    settings.MKTAUTO_WHATSAPP_SENDER_NUMBER = ""

    assert [warning.id for warning in check_channel_backends(None)] == ["campaigns.W003"]

"""SMS: GSM-7 and UCS-2 segment counting, rendering with short links, dispatch through the backends, Brevo's API."""

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from campaigns import dispatch
from campaigns.channels.base import (
    ChannelBackend,
    ChannelMessage,
    PermanentChannelError,
    TransientChannelError,
    get_backend,
)
from campaigns.channels.brevo import BrevoBackend
from campaigns.channels.console import ConsoleBackend
from campaigns.checks import check_channel_backends
from campaigns.models import Delivery, MessageTemplate, ShortLink, StepMetric
from campaigns.rendering import RenderError
from campaigns.sms import GSM7, UCS2, count_segments, render_sms
from contacts.models import ConsentStatus, Contact, Event
from workflows.models import Enrollment, Step, Workflow

SENT: list[ChannelMessage] = []


class MemoryBackend(ChannelBackend):
    """Keeps sent messages in SENT, like Django's locmem email backend."""

    def send(self, message: ChannelMessage) -> str:
        SENT.append(message)
        return f"memory-{len(SENT)}"


class BusyBackend(ChannelBackend):
    """A provider that is down for now."""

    def send(self, message: ChannelMessage) -> str:
        raise TransientChannelError("provider answered 503")


class RefusingBackend(ChannelBackend):
    """A provider that refuses the number."""

    def send(self, message: ChannelMessage) -> str:
        raise PermanentChannelError("invalid recipient number")


@pytest.fixture(autouse=True)
def _english():
    """Validation messages are for staff, read here in English; contacts still get their own language."""
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _memory_backend(settings):
    SENT.clear()
    settings.MKTAUTO_SMS_BACKEND = "tests.test_sms.MemoryBackend"
    yield
    SENT.clear()


@pytest.fixture
def sanne(db) -> Contact:
    """Subscribed to SMS, with a mobile number, no email consent."""
    return Contact.objects.create(
        email="sanne@example.com", phone="+31612345678", first_name="Sanne", sms_consent=ConsentStatus.SUBSCRIBED
    )


@pytest.fixture
def reminder(db) -> MessageTemplate:
    return MessageTemplate.objects.create(
        name="Mandje sms",
        channel="sms",
        body="Hoi {{ first_name|default:'daar' }}, je mandje wacht: https://shop.example.com/cart/c1.",
    )


def queue(contact: Contact, template: MessageTemplate, now, **fields) -> Delivery:
    return Delivery.objects.create(
        contact=contact,
        template=template,
        channel=template.channel,
        transactional=template.transactional,
        status=Delivery.Status.QUEUED,
        next_attempt_at=now,
        created_at=now,
        **fields,
    )


# Segment counting.


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, GSM7, 160, 1),
        ("a" * 161, GSM7, 161, 2),
        ("a" * 306, GSM7, 306, 2),
        ("a" * 307, GSM7, 307, 3),
        ("é" * 160, GSM7, 160, 1),
        ("€" * 80, GSM7, 160, 1),
        ("€" * 80 + "a", GSM7, 161, 2),
        ("[" * 79 + "aa", GSM7, 160, 1),
        ("a" * 70 + "’", UCS2, 71, 2),
        ("ł" * 70, UCS2, 70, 1),
        ("ł" * 71, UCS2, 71, 2),
        ("ł" * 134, UCS2, 134, 2),
        ("ł" * 135, UCS2, 135, 3),
        ("😀" * 35, UCS2, 70, 1),
        ("😀" * 36, UCS2, 72, 2),
        ("", GSM7, 0, 0),
    ],
    ids=[
        "gsm-160",
        "gsm-161",
        "gsm-306",
        "gsm-307",
        "gsm-accented-basic",
        "euro-80",
        "euro-80-plus-one",
        "bracket-79",
        "quote-forces-ucs2",
        "ucs2-70",
        "ucs2-71",
        "ucs2-134",
        "ucs2-135",
        "emoji-35",
        "emoji-36",
        "empty",
    ],
)
def test_count_segments_table(text, encoding, units, segments):
    count = count_segments(text)

    assert count.encoding == encoding
    assert count.units == units
    assert count.segments == segments


def test_extension_character_not_split():
    # 306 septets would fit two segments of 153, but the euro sign cannot straddle the boundary.
    text = "a" * 152 + "€" + "a" * 152

    assert count_segments(text).segments == 3


def test_surrogate_pair_not_split():
    text = "ł" * 66 + "😀" + "ł" * 66

    assert count_segments(text).segments == 3


def test_unicode_characters_listed():
    count = count_segments("Café’s 😀 en ’t")

    assert count.unicode_characters == ("’", "😀")


# Rendering.


def test_render_sms_merges_and_shortens(sanne, reminder):
    rendered = render_sms(reminder, sanne, shorten_link=lambda url: "http://127.0.0.1:8000/s/AbCdEf12")

    assert rendered.text == "Hoi Sanne, je mandje wacht: http://127.0.0.1:8000/s/AbCdEf12."
    assert rendered.links == ["https://shop.example.com/cart/c1"]
    assert rendered.count.segments == 1


def test_render_sms_links_as_written(sanne, reminder):
    reminder.sms_track_links = False

    rendered = render_sms(reminder, sanne, shorten_link=lambda url: "http://127.0.0.1:8000/s/AbCdEf12")

    assert rendered.text == "Hoi Sanne, je mandje wacht: https://shop.example.com/cart/c1."


def test_render_sms_over_maximum_rejected(sanne, reminder):
    reminder.body = "x" * 200
    reminder.sms_max_segments = 1

    with pytest.raises(RenderError, match="the SMS is 2 segments \\(200 GSM-7 characters\\) and the template allows 1"):
        render_sms(reminder, sanne)


def test_render_sms_empty_rejected(sanne, reminder):
    reminder.body = "{{ trigger.code }}"

    with pytest.raises(RenderError, match="is empty for contact"):
        render_sms(reminder, sanne)


def test_render_sms_cart_block_as_text(sanne, reminder):
    reminder.body = "Nog in je mandje:\n{% cart_items %}"

    rendered = render_sms(reminder, sanne, trigger={"line_items": [{"title": "Mok", "price": "8", "quantity": 1}]})

    assert rendered.text == "Nog in je mandje:\n\n- Mok, 1 × € 8,00"


# Validation.


def test_clean_sms_without_body_rejected(db):
    template = MessageTemplate(name="Leeg", channel="sms", body="")

    with pytest.raises(ValidationError) as caught:
        template.full_clean()

    assert caught.value.message_dict["body"] == ["An SMS needs a text; write it in the body."]


def test_clean_sms_too_long_rejected(db):
    template = MessageTemplate(name="Lang", channel="sms", body="a" * 400, sms_max_segments=2)

    with pytest.raises(ValidationError) as caught:
        template.full_clean()

    assert "the SMS is 3 segments" in caught.value.message_dict["body"][0]


def test_clean_sms_within_maximum_passes(db):
    template = MessageTemplate(name="Kort", channel="sms", body="Hoi {{ first_name }}, tot morgen!")

    template.full_clean()


# Dispatch.


def test_dispatch_sends_sms(sanne, reminder, t0):
    delivery = queue(sanne, reminder, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.to_address == "+31612345678"
    assert delivery.provider_message_id == "memory-1"
    assert delivery.message_id == f"delivery-{delivery.pk}"
    assert SENT[0].to == "+31612345678"
    assert SENT[0].unicode is False
    assert SENT[0].transactional is False


def test_dispatch_sms_link_shortened(sanne, reminder, t0):
    delivery = queue(sanne, reminder, t0)

    dispatch.dispatch_due(t0)

    link = ShortLink.objects.get(delivery=delivery)
    assert link.url == "https://shop.example.com/cart/c1"
    assert SENT[0].text == f"Hoi Sanne, je mandje wacht: http://127.0.0.1:8000/s/{link.code}."


def test_short_link_redirects_and_counts(client, sanne, reminder, t0):
    delivery = queue(sanne, reminder, t0)
    dispatch.dispatch_due(t0)
    code = ShortLink.objects.get(delivery=delivery).code

    response = client.get(f"/s/{code}", HTTP_USER_AGENT="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)")

    assert response.status_code == 302
    assert response["Location"] == "https://shop.example.com/cart/c1"
    delivery.refresh_from_db()
    assert delivery.clicked_at is not None
    assert Event.objects.filter(type="link_clicked", contact=sanne).count() == 1


def test_short_link_unknown_code_not_found(client, db):
    assert client.get("/s/NoSuchCd").status_code == 404


def test_retried_sms_reuses_short_link(sanne, reminder, t0, settings):
    settings.MKTAUTO_SMS_BACKEND = "tests.test_sms.BusyBackend"
    delivery = queue(sanne, reminder, t0)
    dispatch.dispatch_due(t0)
    settings.MKTAUTO_SMS_BACKEND = "tests.test_sms.MemoryBackend"

    dispatch.dispatch_due(t0 + timedelta(minutes=2))

    assert ShortLink.objects.filter(delivery=delivery).count() == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.attempts == 2


def test_sms_without_consent_cancelled(sanne, reminder, t0):
    Contact.objects.filter(pk=sanne.pk).update(sms_consent=ConsentStatus.UNKNOWN)
    delivery = queue(sanne, reminder, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "no sms consent"
    assert SENT == []


def test_transactional_sms_without_consent_sent(sanne, reminder, t0):
    Contact.objects.filter(pk=sanne.pk).update(sms_consent=ConsentStatus.UNSUBSCRIBED)
    reminder.transactional = True
    reminder.save()
    delivery = queue(sanne, reminder, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert SENT[0].transactional is True


def test_sms_without_phone_cancelled(anna, reminder, t0):
    Contact.objects.filter(pk=anna.pk).update(sms_consent=ConsentStatus.SUBSCRIBED)
    delivery = queue(anna, reminder, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "no phone number"


def test_email_consent_not_enough_for_sms(anna, reminder, t0):
    Contact.objects.filter(pk=anna.pk).update(phone="+31687654321")
    delivery = queue(anna, reminder, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.error == "no sms consent"


def test_sms_over_maximum_fails(sanne, reminder, t0):
    reminder.body = "a" * 200
    reminder.sms_max_segments = 1
    reminder.save()
    delivery = queue(sanne, reminder, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == 1
    assert "the template allows 1" in delivery.error


def test_unicode_sms_flagged(sanne, reminder, t0):
    reminder.body = "Hoi {{ first_name }} 😀"
    reminder.save()
    queue(sanne, reminder, t0)

    dispatch.dispatch_due(t0)

    assert SENT[0].unicode is True


def test_transient_error_retried(sanne, reminder, t0, settings):
    settings.MKTAUTO_SMS_BACKEND = "tests.test_sms.BusyBackend"
    delivery = queue(sanne, reminder, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.QUEUED
    assert delivery.attempts == 1
    assert delivery.next_attempt_at == t0 + timedelta(minutes=2)
    assert delivery.error == "TransientChannelError: provider answered 503"


def test_permanent_error_fails_at_once(sanne, reminder, t0, settings):
    settings.MKTAUTO_SMS_BACKEND = "tests.test_sms.RefusingBackend"
    delivery = queue(sanne, reminder, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == 1
    assert delivery.error == "PermanentChannelError: invalid recipient number"


def test_unloadable_backend_retries_sms(anna, sanne, reminder, t0, settings):
    settings.MKTAUTO_SMS_BACKEND = "tests.test_sms.NoSuchBackend"
    sms = queue(sanne, reminder, t0)
    email = queue(anna, MessageTemplate.objects.create(name="Mail", subject="Hoi", body="Hoi"), t0)

    dispatch.dispatch_due(t0)

    sms.refresh_from_db()
    email.refresh_from_db()
    assert sms.status == Delivery.Status.QUEUED
    assert sms.error.startswith("ImportError: ")
    assert email.status == Delivery.Status.SENT


def test_sms_counts_step_metric(sanne, reminder, t0):
    # The engine has no SMS step kind yet, so the step is built directly; dispatch reads only its id.
    workflow = Workflow.objects.create(name="Mandje", status=Workflow.Status.LIVE, trigger_event="checkout_started")
    step = Step.objects.create(workflow=workflow, position=0, key="sms-1", kind=Step.Kind.SEND_EMAIL, template=reminder)
    enrollment = Enrollment.objects.create(workflow=workflow, contact=sanne, step=step, visit=1, enrolled_at=t0)
    queue(sanne, reminder, t0, enrollment=enrollment, step=step, visit=1)

    dispatch.dispatch_due(t0)

    assert StepMetric.objects.get(step=step).sent == 1


# Backends.


def test_file_backend_writes_json(settings, tmp_path):
    settings.MKTAUTO_SMS_BACKEND = "campaigns.channels.file.FileBackend"
    settings.MKTAUTO_CHANNEL_FILE_PATH = tmp_path
    message = ChannelMessage(channel="sms", to="+31612345678", text="Hoi", reference="delivery-1")

    provider_id = get_backend("sms").send(message)

    files = list((tmp_path / "sms").glob("*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text(encoding="utf-8"))
    assert record["provider_id"] == provider_id
    assert record["to"] == "+31612345678"
    assert record["text"] == "Hoi"


def test_file_backend_is_default(settings):
    del settings.MKTAUTO_SMS_BACKEND

    assert type(get_backend("sms")).__name__ == "FileBackend"


def test_console_backend_prints():
    stream = io.StringIO()

    provider_id = ConsoleBackend("sms", stream=stream).send(ChannelMessage(channel="sms", to="+31612345678", text="Hoi"))

    assert provider_id.startswith("console-")
    assert "sms to +31612345678" in stream.getvalue()
    assert "\nHoi\n" in stream.getvalue()


def test_unknown_channel_has_no_backend():
    with pytest.raises(ValueError, match="channel 'email' has no message backend"):
        get_backend("email")


# Brevo's HTTP API, against a stub server on loopback.


@dataclass
class StubBrevo:
    url: str
    requests: list[dict] = field(default_factory=list)
    status: int = 201
    answer: dict = field(default_factory=lambda: {"messageId": 1511882900176220})


@pytest.fixture
def brevo(settings) -> Iterator[StubBrevo]:
    stub = StubBrevo(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls.
            body = self.rfile.read(int(self.headers["Content-Length"]))
            stub.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
            payload = json.dumps(stub.answer).encode()
            self.send_response(stub.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_port}/v3/"
    settings.MKTAUTO_BREVO_API_URL = stub.url
    settings.MKTAUTO_BREVO_API_KEY = "xkeysib-test"
    settings.MKTAUTO_SMS_SENDER = "DemoShop"
    settings.MKTAUTO_CHANNEL_TIMEOUT = 5
    yield stub
    server.shutdown()
    server.server_close()
    thread.join()


def test_brevo_sms_request(brevo):
    message = ChannelMessage(channel="sms", to="+31612345678", text="Hoi Sanne", reference="delivery-7")

    provider_id = BrevoBackend("sms").send(message)

    assert provider_id == "1511882900176220"
    request = brevo.requests[0]
    assert request["path"] == "/v3/transactionalSMS/send"
    assert request["headers"]["api-key"] == "xkeysib-test"
    assert request["json"] == {
        "sender": "DemoShop",
        "recipient": "31612345678",
        "content": "Hoi Sanne",
        "type": "marketing",
        "unicodeEnabled": False,
        "tag": "delivery-7",
    }


def test_brevo_transactional_unicode_sms(brevo):
    message = ChannelMessage(channel="sms", to="+31612345678", text="Verzonden 📦", unicode=True, transactional=True)

    BrevoBackend("sms").send(message)

    assert brevo.requests[0]["json"]["type"] == "transactional"
    assert brevo.requests[0]["json"]["unicodeEnabled"] is True


def test_brevo_bad_request_permanent(brevo):
    brevo.status = 400
    brevo.answer = {"code": "invalid_parameter", "message": "recipient is invalid"}

    with pytest.raises(PermanentChannelError, match="Brevo answered 400 to transactionalSMS/send"):
        BrevoBackend("sms").send(ChannelMessage(channel="sms", to="+31600000000", text="Hoi"))


@pytest.mark.parametrize("status", [401, 402, 429, 503])
def test_brevo_retryable_status_transient(brevo, status):
    brevo.status = status
    brevo.answer = {"code": "error", "message": "try later"}

    with pytest.raises(TransientChannelError, match=f"Brevo answered {status}"):
        BrevoBackend("sms").send(ChannelMessage(channel="sms", to="+31612345678", text="Hoi"))


def test_brevo_unreachable_transient(settings):
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused.
    settings.MKTAUTO_BREVO_API_URL = "http://127.0.0.1:9/v3/"
    settings.MKTAUTO_BREVO_API_KEY = "xkeysib-test"

    with pytest.raises(TransientChannelError, match="could not reach Brevo"):
        BrevoBackend("sms").send(ChannelMessage(channel="sms", to="+31612345678", text="Hoi"))


def test_brevo_without_key_transient(brevo, settings):
    settings.MKTAUTO_BREVO_API_KEY = ""
    settings.ANYMAIL = {}

    with pytest.raises(TransientChannelError, match="no Brevo API key"):
        BrevoBackend("sms").send(ChannelMessage(channel="sms", to="+31612345678", text="Hoi"))

    assert brevo.requests == []


def test_dispatch_through_brevo_stub(brevo, sanne, reminder, t0, settings):
    settings.MKTAUTO_SMS_BACKEND = "campaigns.channels.brevo.BrevoBackend"
    delivery = queue(sanne, reminder, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.provider_message_id == "1511882900176220"
    assert brevo.requests[0]["json"]["content"].startswith("Hoi Sanne, je mandje wacht: http://127.0.0.1:8000/s/")


def test_brevo_backend_without_key_warned(settings):
    settings.MKTAUTO_SMS_BACKEND = "campaigns.channels.brevo.BrevoBackend"
    settings.MKTAUTO_BREVO_API_KEY = ""
    settings.ANYMAIL = {}

    assert [warning.id for warning in check_channel_backends(None)] == ["campaigns.W002"]


def test_file_backend_needs_no_key(settings):
    settings.MKTAUTO_SMS_BACKEND = "campaigns.channels.file.FileBackend"
    settings.MKTAUTO_BREVO_API_KEY = ""

    assert check_channel_backends(None) == []

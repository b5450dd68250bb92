"""A small named cast shared by the test modules; each module adds fixtures of its own."""

from datetime import UTC, datetime

import pytest
from django.core.cache import cache
from django.utils import translation

from contacts.models import ConsentStatus, Contact

# A Monday morning in Amsterdam winter time, far from any daylight-saving change.
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def t0() -> datetime:
    return T0


@pytest.fixture(autouse=True)
def _mail_outbox(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture(autouse=True)
def _empty_cache():
    """Start each test with an empty cache, so rate-limit counts do not carry over."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _reset_language():
    """Stop a request's language from leaking into the next test."""
    yield
    translation.deactivate()


@pytest.fixture
def english(settings):
    """Run a test in English: the default language is Dutch, and these tests assert English text."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def anna(db) -> Contact:
    """Subscribed to email, no orders yet."""
    return Contact.objects.create(email="anna@example.com", first_name="Anna", email_consent=ConsentStatus.SUBSCRIBED)


@pytest.fixture
def bram(db) -> Contact:
    """Known contact who never gave email consent."""
    return Contact.objects.create(email="bram@example.com", first_name="Bram")


@pytest.fixture
def chris(db) -> Contact:
    """Unsubscribed from email."""
    return Contact.objects.create(email="chris@example.com", first_name="Chris", email_consent=ConsentStatus.UNSUBSCRIBED)


@pytest.fixture
def staff_user(db, django_user_model):
    """Marieke, a marketer with a superuser login to the admin."""
    return django_user_model.objects.create_superuser("marieke", "marieke@example.com", "marieke-password")


@pytest.fixture
def make_workflow(db):
    """Build a live workflow from step dicts: make_workflow([{"kind": "wait", "wait_hours": 1}, ...])."""
    from campaigns.models import MessageTemplate
    from workflows.lifecycle import activate
    from workflows.models import Step, Workflow

    def build(steps: list[dict], *, name: str = "Test workflow", trigger_event: str = "signed_up", live: bool = True, **fields):
        workflow = Workflow.objects.create(name=name, trigger_event=trigger_event, **fields)
        for position, spec in enumerate(steps):
            spec = dict(spec)
            if spec["kind"] == Step.Kind.SEND_EMAIL and "template" not in spec:
                spec["template"] = MessageTemplate.objects.create(
                    name=f"{name} message {position + 1}",
                    subject=spec.pop("subject", f"Message {position + 1} for {{{{ first_name|default:'you' }}}}"),
                    body=spec.pop("body", "Hello {{ first_name|default:'there' }}."),
                    transactional=spec.pop("transactional", False),
                )
            spec.setdefault("key", f"step-{position + 1}")
            Step.objects.create(workflow=workflow, position=position, **spec)
        if live:
            problems = activate(workflow)
            assert problems == [], problems
        return workflow

    return build


@pytest.fixture
def send_event(db):
    """Store one event through the same path as the API: send_event("signed_up", "anna@example.com", at, **properties)."""
    from contacts.ingest import parse_event, store_events

    counter = iter(range(1, 1_000_000))

    def store(event_type: str, email: str, at: datetime, **properties):
        parsed = parse_event(
            {
                "id": f"test-{next(counter)}",
                "type": event_type,
                "email": email,
                "occurred_at": at.isoformat(),
                "properties": properties,
            },
            now=at,
        )
        return store_events([parsed], "api", now=at).created[0]

    return store

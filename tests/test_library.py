"""The template library: each template installs in Dutch and English, goes live and runs its schedule on a virtual clock."""

from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.utils import translation

from campaigns.channels.base import ChannelBackend, ChannelMessage
from campaigns.models import Delivery, MessageTemplate, ShortLink
from campaigns.rendering import merge_context, render_subject
from contacts.models import ConsentStatus, Contact, VipTier
from workflows.engine.tick import tick
from workflows.library import REPLENISHMENT_CYCLES, TEMPLATES, TemplateNotFound, install_template
from workflows.lifecycle import activate
from workflows.models import Enrollment, SendingPolicy, Workflow

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LANGUAGES = ["nl", "en"]

SMS_SENT: list[ChannelMessage] = []


class MemorySmsBackend(ChannelBackend):
    """Keeps sent SMS in SMS_SENT, like Django's locmem email backend."""

    def send(self, message: ChannelMessage) -> str:
        SMS_SENT.append(message)
        return f"memory-{len(SMS_SENT)}"


@pytest.fixture(autouse=True)
def _memory_sms(db, settings):
    """Each template runs under the default sending policy, whose caps and channel spacing stay in place."""
    assert SendingPolicy.load().caps.exists()
    settings.MKTAUTO_SMS_BACKEND = "tests.test_library.MemorySmsBackend"
    SMS_SENT.clear()
    yield
    SMS_SENT.clear()


@pytest.fixture
def sanne(db) -> Contact:
    """Subscribed to email and SMS."""
    return Contact.objects.create(
        email="sanne@example.com",
        first_name="Sanne",
        phone="+31612345678",
        email_consent=ConsentStatus.SUBSCRIBED,
        sms_consent=ConsentStatus.SUBSCRIBED,
    )


@pytest.fixture
def lotte(db) -> Contact:
    """Subscribed to email; takes the other branch next to anna."""
    return Contact.objects.create(email="lotte@example.com", first_name="Lotte", email_consent=ConsentStatus.SUBSCRIBED)


def install_live(slug: str, language: str) -> Workflow:
    workflow = install_template(slug, language=language)
    assert activate(workflow) == []
    return workflow


def ticks(start: datetime, *offsets: timedelta) -> None:
    for offset in offsets:
        tick(start + offset)


def sent(workflow: Workflow, contact: Contact) -> list[tuple[str, datetime]]:
    deliveries = Delivery.objects.filter(enrollment__workflow=workflow, contact=contact, status=Delivery.Status.SENT)
    return list(deliveries.order_by("sent_at", "id").values_list("step__key", "sent_at"))


def subject_of(slug: str, key: str, language: str, contact: Contact) -> str:
    """The step's subject from the library, in ``language``, with the contact's merge values."""
    message = next(step.message for step in TEMPLATES[slug].steps if step.key == key)
    with translation.override(language):
        source = str(message.subject)
    subject, _missing = render_subject(MessageTemplate(subject=source), merge_context(contact))
    return subject


def subjects_to(contact: Contact) -> list[str]:
    return [message.subject for message in mail.outbox if message.to == [contact.email]]


def enrollment_of(contact: Contact, workflow: Workflow) -> Enrollment:
    return Enrollment.objects.get(contact=contact, workflow=workflow)


def tags_of(contact: Contact) -> set[str]:
    return set(contact.tags.values_list("name", flat=True))


# Installing.


def test_install_unknown_slug_names_choices(db):
    with pytest.raises(TemplateNotFound) as error:
        install_template("birthday")

    assert "unknown template 'birthday'" in str(error.value)
    assert "win_back" in str(error.value)


@pytest.mark.parametrize("slug", sorted(TEMPLATES))
def test_template_goes_live_in_both_languages(slug):
    for language in LANGUAGES:
        workflow = install_template(slug, language=language)

        assert activate(workflow) == []
        assert workflow.template_slug == slug


@pytest.mark.parametrize("slug", sorted(TEMPLATES))
def test_dutch_install_translates_every_message(slug):
    dutch = install_template(slug, language="nl")
    english = install_template(slug, language="en")

    pairs = zip(dutch.steps.order_by("position"), english.steps.order_by("position"), strict=True)
    for dutch_step, english_step in pairs:
        if dutch_step.template is None:
            continue
        assert dutch_step.template.body != english_step.template.body, dutch_step.key
        if english_step.template.subject:
            assert dutch_step.template.subject != english_step.template.subject, dutch_step.key
    assert dutch.objective != english.objective


def test_replenishment_cycles_remind_a_week_early():
    reminder_days = {product: days - 7 for product, days in REPLENISHMENT_CYCLES.items()}

    assert reminder_days == {
        "supplement-30-days": 23,
        "coffee-1-lb": 12,
        "skincare-60-ml": 40,
        "pet-food-15-lb": 28,
        "razor-blades-8-pack": 53,
    }


# Abandoned cart with SMS.


@pytest.mark.parametrize("language", LANGUAGES)
def test_cart_sms_full_schedule(language, sanne, send_event, t0):
    workflow = install_live("abandoned_cart_sms", language)
    send_event("checkout_started", sanne.email, t0, token="cart-1", abandoned_checkout_url="https://shop.example.com/c/1")

    ticks(t0, 0 * HOUR, 1 * HOUR, 4 * HOUR, 24 * HOUR, 48 * HOUR, 51 * HOUR, 72 * HOUR)

    assert sent(workflow, sanne) == [
        ("reminder", t0 + 1 * HOUR),
        ("sms-reminder", t0 + 4 * HOUR),
        ("social-proof", t0 + 24 * HOUR),
        ("incentive", t0 + 48 * HOUR),
        ("sms-discount", t0 + 51 * HOUR),
        ("last-call", t0 + 72 * HOUR),
    ]
    keys = ["reminder", "social-proof", "incentive", "last-call"]
    assert subjects_to(sanne) == [subject_of("abandoned_cart_sms", key, language, sanne) for key in keys]
    assert [message.to for message in SMS_SENT] == ["+31612345678", "+31612345678"]
    assert "COMEBACK10" in SMS_SENT[1].text
    assert ShortLink.objects.filter(url="https://shop.example.com/c/1").count() == 2


def test_cart_sms_needs_sms_consent(anna, send_event, t0):
    workflow = install_live("abandoned_cart_sms", "nl")
    send_event("checkout_started", anna.email, t0, token="cart-2")

    tick(t0)

    assert workflow.enrollments.count() == 0


def test_cart_sms_exits_on_purchase(sanne, send_event, t0):
    workflow = install_live("abandoned_cart_sms", "en")
    send_event("checkout_started", sanne.email, t0, token="cart-3")
    ticks(t0, 0 * HOUR, 1 * HOUR, 4 * HOUR)
    send_event("order_placed", sanne.email, t0 + 5 * HOUR, checkout_token="cart-3", total_price="40.00")

    ticks(t0, 5 * HOUR, 24 * HOUR, 48 * HOUR)

    assert [key for key, _at in sent(workflow, sanne)] == ["reminder", "sms-reminder"]
    assert enrollment_of(sanne, workflow).state == Enrollment.State.EXITED


# Post-purchase, first order.


@pytest.mark.parametrize("language", LANGUAGES)
def test_post_purchase_full_schedule(language, anna, send_event, t0):
    workflow = install_live("post_purchase", language)
    send_event("order_placed", anna.email, t0, total_price="40.00", order_id="1001")
    tick(t0)
    send_event("order_fulfilled", anna.email, t0 + 1 * DAY, order_id="1001")
    tick(t0 + 1 * DAY)
    send_event("order_delivered", anna.email, t0 + 3 * DAY, order_id="1001")

    ticks(t0, 3 * DAY, 6 * DAY, 10 * DAY, 17 * DAY, 24 * DAY)

    assert sent(workflow, anna) == [
        ("confirmation", t0),
        ("shipping", t0 + 1 * DAY),
        ("product-guide", t0 + 6 * DAY),
        ("review-request", t0 + 10 * DAY),
        ("cross-sell", t0 + 17 * DAY),
        ("loyalty", t0 + 24 * DAY),
    ]
    keys = ["confirmation", "shipping", "product-guide", "review-request", "cross-sell", "loyalty"]
    assert subjects_to(anna) == [subject_of("post_purchase", key, language, anna) for key in keys]
    assert tags_of(anna) == {"repeat-customer"}
    assert enrollment_of(anna, workflow).state == Enrollment.State.COMPLETED


def test_post_purchase_skips_shipping_after_timeout(anna, send_event, t0):
    workflow = install_live("post_purchase", "en")
    send_event("order_placed", anna.email, t0, total_price="40.00")

    ticks(t0, 0 * DAY, 14 * DAY, 28 * DAY, 31 * DAY)

    assert sent(workflow, anna) == [("confirmation", t0), ("product-guide", t0 + 31 * DAY)]


def test_post_purchase_only_first_order(anna, send_event, t0):
    workflow = install_live("post_purchase", "en")
    send_event("order_placed", anna.email, t0 - 30 * DAY, total_price="25.00")
    tick(t0 - 30 * DAY)
    send_event("order_placed", anna.email, t0, total_price="40.00")

    tick(t0)

    assert workflow.enrollments.count() == 1
    assert enrollment_of(anna, workflow).enrolled_at == t0 - 30 * DAY


# What the cross-sell and loyalty emails add for a contact who ordered a second time.
REPEAT_BUYER_TEXT = {
    "en": ("Thank you for ordering again!", "Your 2 orders have already earned you points."),
    "nl": ("Bedankt dat je opnieuw hebt besteld!", "Met je 2 bestellingen heb je al punten gespaard."),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_post_purchase_second_order_continues_with_adjusted_content(language, anna, lotte, send_event, t0):
    workflow = install_live("post_purchase", language)
    for contact in (anna, lotte):
        send_event("order_placed", contact.email, t0, total_price="40.00")
    tick(t0)
    send_event("order_placed", anna.email, t0 + 2 * DAY, total_price="15.00")

    ticks(t0, 2 * DAY, 14 * DAY, 28 * DAY, 31 * DAY, 35 * DAY, 42 * DAY, 49 * DAY)

    keys = ["confirmation", "product-guide", "review-request", "cross-sell", "loyalty"]
    assert [key for key, _at in sent(workflow, anna)] == keys
    assert [key for key, _at in sent(workflow, lotte)] == keys
    enrollment = enrollment_of(anna, workflow)
    assert enrollment.converted_at == t0 + 2 * DAY
    assert enrollment.state == Enrollment.State.COMPLETED
    thanks, earned = REPEAT_BUYER_TEXT[language]
    anna_bodies = [message.body for message in mail.outbox if message.to == [anna.email]]
    lotte_bodies = [message.body for message in mail.outbox if message.to == [lotte.email]]
    assert thanks in anna_bodies[3]
    assert thanks not in lotte_bodies[3]
    assert earned in anna_bodies[4]
    assert earned not in lotte_bodies[4]


@pytest.mark.parametrize("language", LANGUAGES)
def test_refund_hands_post_purchase_over_to_returns(language, anna, send_event, t0):
    post_purchase = install_live("post_purchase", language)
    returns = install_live("returns_follow_up", language)
    send_event("order_placed", anna.email, t0, total_price="40.00", order_id="1001")
    tick(t0)
    send_event("refund_created", anna.email, t0 + 2 * DAY, amount="40.00", order_id="1001")

    ticks(t0, 2 * DAY, 5 * DAY, 12 * DAY)

    assert enrollment_of(anna, post_purchase).exit_reason == "exit condition"
    assert [key for key, _at in sent(post_purchase, anna)] == ["confirmation"]
    assert sent(returns, anna) == [
        ("return-received", t0 + 2 * DAY),
        ("exchange-help", t0 + 5 * DAY),
        ("feedback", t0 + 12 * DAY),
    ]
    keys = ["return-received", "exchange-help", "feedback"]
    assert subjects_to(anna)[1:] == [subject_of("returns_follow_up", key, language, anna) for key in keys]


def test_returns_follow_up_exits_on_new_order(anna, send_event, t0):
    returns = install_live("returns_follow_up", "en")
    send_event("refund_created", anna.email, t0, amount="40.00", order_id="1001")
    tick(t0)
    send_event("order_placed", anna.email, t0 + 1 * DAY, total_price="55.00")

    ticks(t0, 1 * DAY, 3 * DAY, 10 * DAY)

    assert [key for key, _at in sent(returns, anna)] == ["return-received"]
    assert enrollment_of(anna, returns).state == Enrollment.State.EXITED


# Browse abandonment.


@pytest.mark.parametrize("language", LANGUAGES)
def test_browse_full_schedule(language, anna, send_event, t0):
    workflow = install_live("browse_abandonment", language)
    send_event("product_viewed", anna.email, t0, product_title="Linen shirt", product_url="https://shop.example.com/p/1")

    ticks(t0, 0 * HOUR, 2 * HOUR, 26 * HOUR, 50 * HOUR)

    assert sent(workflow, anna) == [
        ("reminder", t0 + 2 * HOUR),
        ("similar-products", t0 + 26 * HOUR),
        ("category-bestsellers", t0 + 50 * HOUR),
    ]
    assert subjects_to(anna)[1:] == [
        subject_of("browse_abandonment", key, language, anna) for key in ("similar-products", "category-bestsellers")
    ]
    assert "Linen shirt" in subjects_to(anna)[0]


def test_browse_checkout_started_ends_it(anna, send_event, t0):
    workflow = install_live("browse_abandonment", "en")
    send_event("product_viewed", anna.email, t0)
    tick(t0)
    send_event("checkout_started", anna.email, t0 + 1 * HOUR, token="cart-9")

    ticks(t0, 1 * HOUR, 2 * HOUR)

    assert sent(workflow, anna) == []
    assert enrollment_of(anna, workflow).exit_reason == "condition"


def test_browse_add_to_cart_exits(anna, send_event, t0):
    workflow = install_live("browse_abandonment", "en")
    send_event("product_viewed", anna.email, t0)
    tick(t0)
    send_event("product_added_to_cart", anna.email, t0 + 1 * HOUR, cart_token="cart-8")

    tick(t0 + 1 * HOUR)

    assert enrollment_of(anna, workflow).exit_reason == "exit condition"


def test_browse_once_per_day(anna, send_event, t0):
    workflow = install_live("browse_abandonment", "en")
    send_event("product_viewed", anna.email, t0)
    tick(t0)
    Enrollment.objects.update(state=Enrollment.State.COMPLETED)
    send_event("product_viewed", anna.email, t0 + 12 * HOUR)
    tick(t0 + 12 * HOUR)
    assert workflow.enrollments.count() == 1

    send_event("product_viewed", anna.email, t0 + 25 * HOUR)
    tick(t0 + 25 * HOUR)

    assert workflow.enrollments.count() == 2


@pytest.mark.parametrize("language", LANGUAGES)
def test_browse_other_category_restarts_with_new_product(language, anna, send_event, t0):
    workflow = install_live("browse_abandonment", language)
    send_event("product_viewed", anna.email, t0, product_title="Linen shirt", category="Shirts")
    ticks(t0, 0 * HOUR, 2 * HOUR)
    send_event("product_viewed", anna.email, t0 + 3 * HOUR, product_title="Suede boots", category="Shoes")

    ticks(t0, 3 * HOUR, 5 * HOUR, 26 * HOUR, 50 * HOUR, 74 * HOUR)

    first, second = workflow.enrollments.order_by("id")
    assert (first.state, first.exit_reason) == (Enrollment.State.EXITED, "restarted: category changed to Shoes")
    assert second.context["product_title"] == "Suede boots"
    # The restarted reminder waits for the workflow's cap of one browse email a day, and the fourth
    # browse email in three days meets the installation's cap of three promotional emails a week.
    assert sent(workflow, anna) == [
        ("reminder", t0 + 2 * HOUR),
        ("reminder", t0 + 26 * HOUR),
        ("similar-products", t0 + 50 * HOUR),
    ]
    outcome, reason = second.logs.order_by("at", "id").values_list("outcome", "reason").last()
    assert (outcome, reason.split(" reached")[0]) == ("deferred", "email frequency cap 3 per 7 days")
    subjects = subjects_to(anna)
    assert "Linen shirt" in subjects[0]
    assert "Suede boots" in subjects[1]


def test_browse_same_category_keeps_the_series(anna, send_event, t0):
    workflow = install_live("browse_abandonment", "en")
    send_event("product_viewed", anna.email, t0, product_title="Linen shirt", category="Shirts")
    ticks(t0, 0 * HOUR, 2 * HOUR)
    send_event("product_viewed", anna.email, t0 + 3 * HOUR, product_title="Oxford shirt", category="Shirts")

    ticks(t0, 3 * HOUR, 26 * HOUR)

    assert workflow.enrollments.count() == 1
    assert [key for key, _at in sent(workflow, anna)] == ["reminder", "similar-products"]


# Win-back.

# The lapse starts once the last order is more than 60 days old.
LAPSED = 60 * DAY + timedelta(minutes=1)


@pytest.mark.parametrize("language", LANGUAGES)
def test_win_back_full_schedule(language, anna, send_event, t0):
    workflow = install_live("win_back", language)
    send_event("order_placed", anna.email, t0, total_price="30.00")
    tick(t0)
    start = t0 + LAPSED

    ticks(start, 0 * DAY, 15 * DAY, 30 * DAY, 45 * DAY, 52 * DAY)

    assert sent(workflow, anna) == [
        ("miss-you", start),
        ("new-arrivals", start + 15 * DAY),
        ("offer", start + 30 * DAY),
        ("stay-subscribed", start + 45 * DAY),
    ]
    keys = ["miss-you", "new-arrivals", "offer", "stay-subscribed"]
    assert subjects_to(anna) == [subject_of("win_back", key, language, anna) for key in keys]
    assert tags_of(anna) == {"suppressed-inactive"}


def test_win_back_click_keeps_contact_active(anna, send_event, t0):
    workflow = install_live("win_back", "en")
    send_event("order_placed", anna.email, t0, total_price="30.00")
    tick(t0)
    start = t0 + LAPSED
    ticks(start, 0 * DAY, 15 * DAY, 30 * DAY, 45 * DAY)
    send_event("link_clicked", anna.email, start + 46 * DAY, url="https://shop.example.com")

    ticks(start, 46 * DAY, 52 * DAY)

    assert [key for key, _at in sent(workflow, anna)] == ["miss-you", "new-arrivals", "offer", "stay-subscribed"]
    assert tags_of(anna) == {"active"}
    assert enrollment_of(anna, workflow).exit_reason == "exit condition"


def test_win_back_click_between_emails_exits_to_active(anna, send_event, t0):
    workflow = install_live("win_back", "en")
    send_event("order_placed", anna.email, t0, total_price="30.00")
    tick(t0)
    start = t0 + LAPSED
    tick(start)
    send_event("link_clicked", anna.email, start + 3 * DAY, url="https://shop.example.com")

    ticks(start, 3 * DAY, 15 * DAY)

    assert [key for key, _at in sent(workflow, anna)] == ["miss-you"]
    assert tags_of(anna) == {"active"}


def test_win_back_unsubscribe_exits_without_active_tag(anna, send_event, t0):
    from contacts.consent import set_consent
    from contacts.models import Channel

    workflow = install_live("win_back", "en")
    send_event("order_placed", anna.email, t0, total_price="30.00")
    tick(t0)
    start = t0 + LAPSED
    tick(start)
    set_consent(anna, Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, source="unsubscribe link")

    ticks(start, 15 * DAY, 52 * DAY)

    assert [key for key, _at in sent(workflow, anna)] == ["miss-you"]
    assert enrollment_of(anna, workflow).state == Enrollment.State.EXITED
    assert tags_of(anna) == set()


def test_win_back_purchase_exits(anna, send_event, t0):
    workflow = install_live("win_back", "en")
    send_event("order_placed", anna.email, t0, total_price="30.00")
    tick(t0)
    start = t0 + LAPSED
    tick(start)
    send_event("order_placed", anna.email, start + 10 * DAY, total_price="45.00")

    ticks(start, 10 * DAY, 15 * DAY)

    assert [key for key, _at in sent(workflow, anna)] == ["miss-you"]
    assert enrollment_of(anna, workflow).state == Enrollment.State.EXITED
    assert tags_of(anna) == {"active"}


# VIP recognition.


@pytest.fixture
def vip_tiers(db):
    """Silver from 500 spent or 5 orders, as a new installation has it."""
    VipTier.objects.all().delete()
    VipTier.objects.create(name="Silver", rank=1, min_total_spent=500, min_order_count=5)


@pytest.mark.parametrize("language", LANGUAGES)
def test_vip_full_schedule(language, anna, vip_tiers, send_event, t0):
    workflow = install_live("vip_recognition", language)
    send_event("order_placed", anna.email, t0, total_price="520.00")
    # The order lifts Anna into Silver; the next tick processes the vip_tier_reached event.
    tick(t0)
    start = t0 + timedelta(minutes=1)

    ticks(start, 0 * DAY, 3 * DAY, 10 * DAY)

    assert sent(workflow, anna) == [("congratulations", start), ("benefits", start + 3 * DAY), ("vip-offer", start + 10 * DAY)]
    keys = ["congratulations", "benefits", "vip-offer"]
    assert subjects_to(anna) == [subject_of("vip_recognition", key, language, anna) for key in keys]
    assert tags_of(anna) == {"vip"}
    assert "VIP15" in mail.outbox[-1].body


def test_vip_below_threshold_not_enrolled(anna, vip_tiers, send_event, t0):
    workflow = install_live("vip_recognition", "en")
    send_event("order_placed", anna.email, t0, total_price="499.00")
    tick(t0)

    tick(t0 + HOUR)

    assert workflow.enrollments.count() == 0


# B2B lead nurturing.


@pytest.mark.parametrize("language", LANGUAGES)
def test_lead_nurture_both_branches(language, anna, lotte, send_event, t0, django_capture_on_commit_callbacks):
    workflow = install_live("b2b_lead_nurturing", language)
    Contact.objects.filter(pk=anna.pk).update(lead_score=35)
    send_event("content_downloaded", anna.email, t0, content_title="Guide", content_url="https://shop.example.com/g.pdf")
    send_event("content_downloaded", lotte.email, t0)

    # The staff notification is sent once the tick commits.
    with django_capture_on_commit_callbacks(execute=True):
        ticks(t0, 0 * DAY, 3 * DAY, 7 * DAY, 12 * DAY, 19 * DAY, 26 * DAY)

    schedule = [("content", t0), ("related-content", t0 + 3 * DAY), ("case-study", t0 + 7 * DAY), ("education", t0 + 12 * DAY)]
    assert sent(workflow, anna) == schedule
    assert sent(workflow, lotte) == [*schedule, ("demo-invitation", t0 + 19 * DAY)]
    keys = ["content", "related-content", "case-study", "education", "demo-invitation"]
    assert subjects_to(lotte) == [subject_of("b2b_lead_nurturing", key, language, lotte) for key in keys]
    # 35, plus 10 from the default score rule for a download, plus 5 from the workflow on day 3.
    assert Contact.objects.get(pk=anna.pk).lead_score == 50
    assert tags_of(anna) == {"sales-ready"}
    assert tags_of(lotte) == set()
    assert enrollment_of(lotte, workflow).exit_reason == "condition"
    staff_mail = [message for message in mail.outbox if message.to == ["sales@example.com"]]
    assert len(staff_mail) == 1
    assert "anna@example.com" in staff_mail[0].body


def test_lead_nurture_demo_request_exits(anna, send_event, t0):
    workflow = install_live("b2b_lead_nurturing", "en")
    send_event("content_downloaded", anna.email, t0)
    tick(t0)
    send_event("demo_requested", anna.email, t0 + 2 * DAY)

    ticks(t0, 2 * DAY, 3 * DAY)

    assert [key for key, _at in sent(workflow, anna)] == ["content"]
    assert enrollment_of(anna, workflow).state == Enrollment.State.EXITED


# SaaS trial conversion.


@pytest.mark.parametrize("language", LANGUAGES)
def test_trial_both_branches(language, anna, lotte, send_event, t0):
    workflow = install_live("saas_trial_conversion", language)
    send_event("signed_up", anna.email, t0, plan="trial")
    send_event("signed_up", lotte.email, t0, plan="trial")
    tick(t0)
    # Anna uses the product on day 5, and Lotte has not been back.
    send_event("page_viewed", anna.email, t0 + 5 * DAY, url="https://app.example.com/dashboard")

    ticks(t0, 1 * DAY, 2 * DAY, 4 * DAY, 5 * DAY, 6 * DAY, 7 * DAY, 10 * DAY, 12 * DAY, 14 * DAY)

    days = {"day-1": 1, "day-2": 2, "day-4": 4, "day-7": 7, "day-10": 10, "day-12": 12, "day-14": 14}
    assert sent(workflow, anna) == [(key, t0 + day * DAY) for key, day in days.items()]
    lotte_keys = ["day-1", "day-2", "day-4", "need-help", "day-7", "day-10", "day-12", "day-14"]
    assert [key for key, _at in sent(workflow, lotte)] == lotte_keys
    assert dict(sent(workflow, lotte))["need-help"] == t0 + 6 * DAY
    assert subjects_to(lotte) == [subject_of("saas_trial_conversion", key, language, lotte) for key in lotte_keys]


def test_trial_needs_trial_plan(anna, send_event, t0):
    workflow = install_live("saas_trial_conversion", "en")
    send_event("signed_up", anna.email, t0, plan="pro")

    tick(t0)

    assert workflow.enrollments.count() == 0


# Replenishment.


@pytest.mark.parametrize("language", ["nl", "en"])
def test_replenishment_full_schedule(language, anna, send_event, t0):
    workflow = install_live("replenishment", language)
    items = [{"title": "Supplement, 30 days", "cycle_days": REPLENISHMENT_CYCLES["supplement-30-days"]}]
    send_event("order_placed", anna.email, t0, total_price="29.95", order_id="2001", line_items=items)

    ticks(t0, 0 * DAY, 22 * DAY, 23 * DAY, 28 * DAY, 35 * DAY)

    assert sent(workflow, anna) == [
        ("reminder", t0 + 23 * DAY),
        ("reorder-prompt", t0 + 28 * DAY),
        ("subscribe-and-save", t0 + 35 * DAY),
    ]
    keys = ["reminder", "reorder-prompt", "subscribe-and-save"]
    assert subjects_to(anna) == [subject_of("replenishment", key, language, anna) for key in keys]


def test_replenishment_reorder_restarts_cycle(anna, send_event, t0):
    workflow = install_live("replenishment", "en")
    items = [{"title": "Coffee 1 lb", "cycle_days": REPLENISHMENT_CYCLES["coffee-1-lb"]}]
    send_event("order_placed", anna.email, t0, total_price="14.00", order_id="3001", line_items=items)
    tick(t0)
    send_event("order_placed", anna.email, t0 + 10 * DAY, total_price="14.00", order_id="3002", line_items=items)

    tick(t0 + 10 * DAY)

    states = list(workflow.enrollments.order_by("enrolled_at").values_list("state", "exit_reason"))
    assert states == [(Enrollment.State.EXITED, "reordered"), (Enrollment.State.ACTIVE, "")]
    assert workflow.enrollments.get(state=Enrollment.State.ACTIVE).next_run_at == t0 + 22 * DAY

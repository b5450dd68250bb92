"""The engine's stored English reasons shown in the reader's language, with local times."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from campaigns.dispatch import dispatch_due
from campaigns.models import Delivery
from contacts import timeline
from contacts.models import Channel, ConsentStatus, Contact
from workflows import reasons
from workflows.engine.exits import exit_for_withdrawn_consent
from workflows.engine.tick import tick
from workflows.models import Enrollment, Step, StepLog, Workflow
from workflows.reasons import display

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NEW_YORK = "America/New_York"

# Every format the engine writes, as the engine writes it, with its English and Dutch display.
# The engine tests below check that the engine really writes these shapes.
SAMPLES = [
    # Waits.
    ("until 2026-12-17T01:04:09.087803+01:00", None, "until 12/17/2026 1:04 a.m.", "tot 17-12-2026 01:04"),
    ("until 2026-12-17T01:04:09.087803+01:00", NEW_YORK, "until 12/16/2026 7:04 p.m.", "tot 16-12-2026 19:04"),
    (
        "for order_fulfilled until 2026-11-07T10:00:00+01:00",
        None,
        "for order_fulfilled until 11/07/2026 10 a.m.",
        "op order_fulfilled tot uiterlijk 7-11-2026 10:00",
    ),
    ("order_fulfilled happened -> next", None, "order_fulfilled happened -> next", "order_fulfilled gebeurd -> next"),
    (
        "no order_fulfilled before the timeout -> no-shipment",
        None,
        "no order_fulfilled before the timeout -> no-shipment",
        "geen order_fulfilled voor de time-out -> no-shipment",
    ),
    (
        "30 days from data minus 7: until 2026-11-25T10:00:00+01:00",
        None,
        "30 days from data minus 7: until 11/25/2026 10 a.m.",
        "30 dagen uit de gegevens min 7: tot 25-11-2026 10:00",
    ),
    (
        "no days at attributes.cycle_days, continued at once",
        None,
        "no days at attributes.cycle_days, continued at once",
        "geen aantal dagen in attributes.cycle_days, direct verdergegaan",
    ),
    (
        "no date at trigger.delivery_date, continued at once",
        None,
        "no date at trigger.delivery_date, continued at once",
        "geen datum in trigger.delivery_date, direct verdergegaan",
    ),
    # Conditions, sends and actions.
    ("yes -> vip-tag", None, "yes -> vip-tag", "ja -> vip-tag"),
    ("no -> next", None, "no -> next", "nee -> next"),
    ("no email address", None, "no email address", "geen e-mailadres"),
    ("no phone number", None, "no phone number", "geen telefoonnummer"),
    ("email suppressed", None, "email suppressed", "e-mail geblokkeerd"),
    ("no email consent", None, "no email consent", "geen toestemming voor e-mail"),
    ("no sms consent", None, "no sms consent", "geen toestemming voor sms"),
    ("no whatsapp consent", None, "no whatsapp consent", "geen toestemming voor WhatsApp"),
    ("target workflow not live", None, "target workflow not live", "doelworkflow is niet live"),
    (
        "staff notified at sales@example.com",
        None,
        "staff notified at sales@example.com",
        "medewerker op de hoogte gebracht via sales@example.com",
    ),
    (
        "round limit reached, continues next tick",
        None,
        "round limit reached, continues next tick",
        "maximum aantal rondes bereikt, gaat verder bij de volgende verwerking",
    ),
    ("exit step", None, "exit step", "stopstap"),
    ("moved to Sales", None, "moved to Sales", "verplaatst naar Sales"),
    # Exits.
    ("exit condition", None, "exit condition", "stopvoorwaarde"),
    ("goal reached", None, "goal reached", "doel bereikt"),
    ("reordered", None, "reordered", "opnieuw besteld"),
    ("unsubscribed from email", None, "unsubscribed from email", "uitgeschreven voor e-mail"),
    ("unsubscribed from whatsapp", None, "unsubscribed from whatsapp", "uitgeschreven voor WhatsApp"),
    (
        "restarted: category changed to Shoes",
        None,
        "restarted: category changed to Shoes",
        "opnieuw gestart: category gewijzigd in Shoes",
    ),
    ("removed by staff", None, "removed by staff", "verwijderd door een medewerker"),
    # The sending policy, alone and composite.
    (
        "mutual exclusion: not while active in Post-purchase",
        None,
        "mutual exclusion: not while active in Post-purchase",
        "wederzijdse uitsluiting: niet zolang actief in Post-purchase",
    ),
    (
        "priority conflict: active in Cart recovery (priority 20, this workflow 0); also email frequency cap 1 per 7 days",
        None,
        "priority conflict: active in Cart recovery (priority 20, this workflow 0); also email frequency cap 1 per 7 days",
        "prioriteitsconflict: actief in Cart recovery (prioriteit 20, deze workflow 0); "
        "ook frequentielimiet voor e-mail van 1 per 7 dagen",
    ),
    (
        "quiet period of 7 days after order_placed on 2026-11-02 13:00 CET; also email frequency cap 1 per 7 days",
        None,
        "quiet period of 7 days after order_placed on 11/02/2026 1 p.m. CET; also email frequency cap 1 per 7 days",
        "rustperiode van 7 dagen na order_placed op 2-11-2026 13:00 CET; ook frequentielimiet voor e-mail van 1 per 7 dagen",
    ),
    (
        "workflow cap 1 per 1 day reached by Welcome email 1",
        None,
        "workflow cap 1 per 1 day reached by Welcome email 1",
        "workflowlimiet van 1 per 1 dag bereikt door Welcome email 1",
    ),
    (
        "email frequency cap 3 per 7 days reached by A news email 1, B news email 1 and C news email 1",
        None,
        "email frequency cap 3 per 7 days reached by A news email 1, B news email 1 and C news email 1",
        "frequentielimiet voor e-mail van 3 per 7 dagen bereikt door A news email 1, B news email 1 en C news email 1",
    ),
    (
        "SMS frequency cap 2 per 12 hours reached by A, B, C and 2 more",
        None,
        "SMS frequency cap 2 per 12 hours reached by A, B, C and 2 more",
        "frequentielimiet voor Sms van 2 per 12 uur bereikt door A, B, C en nog 2",
    ),
    (
        "channel spacing: no SMS on a day that already had email (Welcome email 1); next try 2026-11-03 08:00 CET",
        None,
        "channel spacing: no SMS on a day that already had email (Welcome email 1); next try 11/03/2026 8 a.m. CET",
        "kanaalspreiding: geen Sms op een dag waarop al e-mail is verstuurd (Welcome email 1); "
        "volgende poging 3-11-2026 08:00 CET",
    ),
    (
        "quiet hours 21:00-08:00 in Europe/Amsterdam; also mutual exclusion, priority conflict, channel spacing, "
        "quiet period after order_placed, workflow cap 2 per 1 hour, WhatsApp frequency cap 1 per 1 day, quiet hours, "
        "Birthday rule; still blocked after the maximum delay of 2 hours",
        None,
        "quiet hours 21:00-08:00 in Europe/Amsterdam; also mutual exclusion, priority conflict, channel spacing, "
        "quiet period after order_placed, workflow cap 2 per 1 hour, WhatsApp frequency cap 1 per 1 day, quiet hours, "
        "Birthday rule; still blocked after the maximum delay of 2 hours",
        "stille uren 21:00-08:00 in Europe/Amsterdam; ook wederzijdse uitsluiting, prioriteitsconflict, kanaalspreiding, "
        "rustperiode na order_placed, workflowlimiet van 2 per 1 uur, frequentielimiet voor WhatsApp van 1 per 1 dag, "
        "stille uren, Birthday rule; nog steeds geblokkeerd na de maximale vertraging van 2 uur",
    ),
    # Send-time cancellations and failures.
    (
        "email consent is no longer waiting for confirmation",
        None,
        "email consent is no longer waiting for confirmation",
        "toestemming e-mail wacht niet meer op bevestiging",
    ),
    ("channel not supported", None, "channel not supported", "kanaal wordt niet ondersteund"),
    ("enrollment exited", None, "enrollment exited", "inschrijving gestopt"),
    ("workflow draft", None, "workflow draft", "workflow is een concept"),
    ("workflow archived", None, "workflow archived", "workflow is gearchiveerd"),
    (
        "the dispatcher stopped while sending, on every attempt",
        None,
        "the dispatcher stopped while sending, on every attempt",
        "de verzending stopte tijdens het versturen, bij elke poging",
    ),
]

# Reasons made of data, not words, and text in no known format: shown as stored.
UNCHANGED = [
    "+5",
    "-3",
    "+vip",
    "-vip",
    "tier=gold",
    "Welcome message 1",
    "order_placed 49.95",
    "ValueError: boom",
    "until later",
    "",
]


def shown(reason: str, zone_name: str | None = None) -> tuple[str, str]:
    with translation.override("en"):
        english = display(reason, zone_name)
    with translation.override("nl"):
        dutch = display(reason, zone_name)
    return english, dutch


@pytest.mark.parametrize(("reason", "zone_name", "english", "dutch"), SAMPLES)
def test_reason_display(reason, zone_name, english, dutch):
    assert shown(reason, zone_name) == (english, dutch)


def test_samples_cover_every_format():
    samples = [reason for reason, *_rest in SAMPLES]
    parts = []
    for reason in samples:
        match = reasons.COMPOSITE.fullmatch(reason)
        parts.append(match["head"])
    rules = [rule for reason in samples for rule in (reasons.COMPOSITE.fullmatch(reason)["also"] or "").split(", ") if rule]

    assert [message for regex, message in reasons.REASONS if not any(regex.fullmatch(part) for part in parts)] == []
    assert [message for regex, message in reasons.RULES if not any(regex.fullmatch(rule) for rule in rules)] == []


@pytest.mark.parametrize("reason", UNCHANGED)
def test_unknown_and_data_reasons_pass_through(reason):
    assert shown(reason) == (reason, reason)


def test_truncated_policy_reason_translates_its_parts():
    cut = "email frequency cap 3 per 7 days reached by A news em…; next try 2026-11-03 08:00 CET"
    unknown = "Birthday rule with a long na…; next try 2026-11-03 08:00 CET"

    assert shown(cut)[1] == (
        "frequentielimiet voor e-mail van 3 per 7 dagen bereikt door A news em…; volgende poging 3-11-2026 08:00 CET"
    )
    assert shown(unknown)[1] == "Birthday rule with a long na…; volgende poging 3-11-2026 08:00 CET"


def test_odd_timestamp_never_raises():
    assert shown("until 2026-13-45T99:00:00+01:00") == ("until 2026-13-45T99:00:00+01:00",) * 2


def stored(contact: Contact, outcome: str) -> list[str]:
    return list(
        StepLog.objects.filter(enrollment__contact=contact, outcome=outcome).order_by("at", "id").values_list("reason", flat=True)
    )


def test_engine_wait_shows_local_time(make_workflow, send_event, t0):
    eva = Contact.objects.create(email="eva@example.com", email_consent=ConsentStatus.SUBSCRIBED, time_zone=NEW_YORK)
    make_workflow([{"kind": "wait", "wait_days": 2}, {"kind": "send_email"}])
    send_event("signed_up", eva.email, t0)

    tick(t0)

    [reason] = stored(eva, StepLog.Outcome.WAITED)
    assert reason.startswith("until 2026-11-04T04:00:00")
    # 09:00 UTC is 04:00 in New York; without the contact's zone it is 10:00 in Amsterdam.
    assert shown(reason, eva.time_zone) == ("until 11/04/2026 4 a.m.", "tot 4-11-2026 04:00")
    assert shown(reason)[1] == "tot 4-11-2026 10:00"


def test_engine_wait_for_event_and_timeout(anna, make_workflow, send_event, t0):
    make_workflow(
        [
            {
                "kind": "wait",
                "wait_mode": Step.WaitMode.UNTIL_EVENT,
                "wait_event": "order_fulfilled",
                "wait_days": 5,
                "if_true": "next",
                "if_false": "no-shipment",
            },
            {"kind": "add_tag", "tag": "shipped"},
            {"kind": "add_tag", "key": "no-shipment", "tag": "not-shipped"},
        ],
        trigger_event="order_placed",
    )
    send_event("order_placed", anna.email, t0)

    tick(t0)
    tick(t0 + 6 * DAY)

    assert [shown(reason)[1] for reason in stored(anna, StepLog.Outcome.WAITED)] == [
        "op order_fulfilled tot uiterlijk 7-11-2026 10:00"
    ]
    assert [shown(reason)[1] for reason in stored(anna, StepLog.Outcome.BRANCHED)] == [
        "geen order_fulfilled voor de time-out -> no-shipment"
    ]


def test_engine_wait_from_data(make_workflow, send_event, t0):
    dana = Contact.objects.create(email="dana@example.com", attributes={"cycle_days": 30})
    make_workflow(
        [{"kind": "wait", "wait_mode": Step.WaitMode.FROM_DATA, "wait_data_path": "attributes.cycle_days", "wait_days": 7}]
    )
    send_event("signed_up", dana.email, t0)

    tick(t0)

    [reason] = stored(dana, StepLog.Outcome.WAITED)
    assert shown(reason)[1] == "30 dagen uit de gegevens min 7: tot 25-11-2026 10:00"


def test_engine_condition_and_consent_skip(bram, make_workflow, send_event, t0):
    make_workflow(
        [
            {"kind": "condition", "condition": {"tag": "vip"}, "if_true": "email", "if_false": "next"},
            {"kind": "send_email", "key": "email"},
        ]
    )
    send_event("signed_up", bram.email, t0)

    tick(t0)

    assert [shown(reason)[1] for reason in stored(bram, StepLog.Outcome.BRANCHED)] == ["nee -> next"]
    assert [shown(reason) for reason in stored(bram, StepLog.Outcome.SKIPPED)] == [
        ("no email consent", "geen toestemming voor e-mail")
    ]


def test_engine_quiet_hours_deferral_in_contact_zone(make_workflow, send_event, t0):
    eva = Contact.objects.create(email="eva@example.com", email_consent=ConsentStatus.SUBSCRIBED, time_zone=NEW_YORK)
    make_workflow([{"kind": "send_email"}])
    send_event("signed_up", eva.email, t0)

    tick(t0)

    [reason] = stored(eva, StepLog.Outcome.DEFERRED)
    assert shown(reason, eva.time_zone) == (
        "quiet hours 21:00-08:00 in America/New_York; next try 11/02/2026 8 a.m. EST",
        "stille uren 21:00-08:00 in America/New_York; volgende poging 2-11-2026 08:00 EST",
    )


def test_engine_frequency_cap_skip(anna, make_workflow, send_event, t0):
    for name in ("A news", "B news", "C news", "D news"):
        make_workflow([{"kind": "send_email", "name": "email 1"}], name=name, blocked_send=Workflow.BlockedSend.SKIP)
    send_event("signed_up", anna.email, t0)

    tick(t0)

    [reason] = stored(anna, StepLog.Outcome.SKIPPED)
    assert shown(reason)[1] == (
        "frequentielimiet voor e-mail van 3 per 7 dagen bereikt door A news email 1, B news email 1 en C news email 1"
    )


def test_engine_exits(anna, make_workflow, send_event, t0):
    by_condition = make_workflow(
        [{"kind": "wait", "wait_days": 2}], name="Browse", exit_condition={"event": "order_placed", "since": "enrollment"}
    )
    # A conversion needs a message sent before it.
    by_goal = make_workflow([{"kind": "send_email"}, {"kind": "wait", "wait_days": 2}], name="Welcome", goal_event="order_placed")
    by_consent = make_workflow([{"kind": "wait", "wait_days": 2}, {"kind": "send_email"}], name="News")
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("order_placed", anna.email, t0 + HOUR)

    tick(t0 + HOUR)
    exit_for_withdrawn_consent([anna.pk], Channel.EMAIL, t0 + 2 * HOUR)

    exits = {enrollment.workflow_id: shown(enrollment.exit_reason) for enrollment in Enrollment.objects.filter(contact=anna)}
    assert exits[by_condition.pk] == ("exit condition", "stopvoorwaarde")
    assert exits[by_goal.pk] == ("goal reached", "doel bereikt")
    assert exits[by_consent.pk] == ("unsubscribed from email", "uitgeschreven voor e-mail")


def test_engine_cancellation_at_send_time(anna, make_workflow, send_event, t0):
    make_workflow([{"kind": "send_email"}])
    send_event("signed_up", anna.email, t0)
    tick(t0, dispatch=False)
    Contact.objects.filter(pk=anna.pk).update(email_consent=ConsentStatus.UNSUBSCRIBED)

    dispatch_due(t0)

    delivery = Delivery.objects.get(contact=anna)
    assert delivery.status == Delivery.Status.CANCELLED
    assert shown(delivery.error) == ("no email consent", "geen toestemming voor e-mail")


def wait_and_exit(anna, make_workflow, send_event, t0) -> Enrollment:
    """Anna waits two days (a stored ISO time) and leaves through the exit condition."""
    make_workflow(
        [{"kind": "wait", "wait_days": 2}], name="Browse", exit_condition={"event": "order_placed", "since": "enrollment"}
    )
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("order_placed", anna.email, t0 + HOUR)
    tick(t0 + HOUR)
    return Enrollment.objects.get(contact=anna)


def test_timeline_shows_reasons_in_dutch(anna, make_workflow, send_event, t0):
    wait_and_exit(anna, make_workflow, send_event, t0)

    with translation.override("nl"):
        details = [entry.detail for entry in timeline.build(anna)]

    assert "Browse · tot 4-11-2026 10:00" in details
    assert "Browse · stopvoorwaarde" in details
    assert "Gestopt · stopreden: stopvoorwaarde" in details


def test_explain_shows_reasons_in_dutch(anna, make_workflow, send_event, t0):
    wait_and_exit(anna, make_workflow, send_event, t0)
    out = StringIO()

    with translation.override("nl"):
        call_command("explain", anna.email, stdout=out)

    lines = out.getvalue().splitlines()
    assert "2026-11-02 10:00 Browse: step-1 wacht: tot 4-11-2026 10:00" in lines
    assert [line for line in lines if " gestopt bij " in line][0].endswith(": stopvoorwaarde")


def test_admin_shows_reasons_in_dutch(client, staff_user, anna, make_workflow, send_event, t0):
    enrollment = wait_and_exit(anna, make_workflow, send_event, t0)
    log = enrollment.logs.get(outcome=StepLog.Outcome.WAITED)
    client.force_login(staff_user)

    pages = {
        "log list": client.get(reverse("admin:workflows_steplog_changelist"), HTTP_ACCEPT_LANGUAGE="nl"),
        "log page": client.get(reverse("admin:workflows_steplog_change", args=[log.pk]), HTTP_ACCEPT_LANGUAGE="nl"),
        "enrollment list": client.get(reverse("admin:workflows_enrollment_changelist"), HTTP_ACCEPT_LANGUAGE="nl"),
        "enrollment page": client.get(
            reverse("admin:workflows_enrollment_change", args=[enrollment.pk]), HTTP_ACCEPT_LANGUAGE="nl"
        ),
    }

    texts = {name: response.content.decode() for name, response in pages.items()}
    assert all(response.status_code == 200 for response in pages.values())
    assert "tot 4-11-2026 10:00" in texts["log list"]
    assert "stopvoorwaarde" in texts["log list"]
    assert "tot 4-11-2026 10:00" in texts["log page"]
    assert log.reason not in texts["log page"]
    assert "stopvoorwaarde" in texts["enrollment list"]
    assert "stopvoorwaarde" in texts["enrollment page"]


def test_delivery_admin_shows_cancellation_in_dutch(client, staff_user, anna, make_workflow, send_event, t0):
    make_workflow([{"kind": "send_email"}])
    send_event("signed_up", anna.email, t0)
    tick(t0, dispatch=False)
    Contact.objects.filter(pk=anna.pk).update(email_consent=ConsentStatus.UNSUBSCRIBED)
    dispatch_due(t0)
    delivery = Delivery.objects.get(contact=anna)
    client.force_login(staff_user)

    listing = client.get(reverse("admin:campaigns_delivery_changelist"), HTTP_ACCEPT_LANGUAGE="nl")
    page = client.get(reverse("admin:campaigns_delivery_change", args=[delivery.pk]), HTTP_ACCEPT_LANGUAGE="nl")

    assert "geen toestemming voor e-mail" in listing.content.decode()
    assert "geen toestemming voor e-mail" in page.content.decode()

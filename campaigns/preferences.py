"""The preference page's rules: which channels a contact can choose, and recording each choice as consent with proof."""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from campaigns import confirmation, tracking
from campaigns.models import Delivery
from contacts.consent import STATUS_FIELDS, set_consent
from contacts.models import Channel, ConsentStatus, Contact

logger = logging.getLogger(__name__)

SOURCE = "preference page"


@dataclass(frozen=True)
class ChannelChoice:
    channel: str
    label: str
    status: str
    # Empty when the contact can choose this channel; otherwise why not, for the page.
    unavailable: str = ""

    @property
    def subscribed(self) -> bool:
        return self.status == ConsentStatus.SUBSCRIBED

    @property
    def pending(self) -> bool:
        return self.status == ConsentStatus.PENDING


def unavailable_reason(contact: Contact, channel: str) -> str:
    if channel == Channel.EMAIL:
        if not contact.email:
            return "no email address"
        if contact.email_suppressed_at is not None:
            return "email suppressed"
        return ""
    return "" if contact.phone else "no phone number"


def channel_choices(contact: Contact) -> list[ChannelChoice]:
    return [
        ChannelChoice(
            channel=channel.value,
            label=str(channel.label),
            status=getattr(contact, STATUS_FIELDS[channel]),
            unavailable=unavailable_reason(contact, channel),
        )
        for channel in Channel
    ]


def save_preferences(
    contact: Contact,
    chosen: set[str],
    *,
    delivery: Delivery | None,
    link_channel: str,
    proof: str,
    at: datetime | None = None,
) -> list[str]:
    """Subscribe the contact to each available channel in ``chosen`` and unsubscribe from the others; return the changed channels.

    A channel the contact never subscribed to stays as it is when left unticked. Email asked for from
    a link that did not arrive by email goes through double opt-in when MKTAUTO_DOUBLE_OPT_IN is on,
    because only a link in an email proves the address.
    """
    at = at or timezone.now()
    changed: list[str] = []
    with transaction.atomic():
        for choice in channel_choices(contact):
            if choice.unavailable:
                continue
            if choice.channel in chosen and not choice.subscribed:
                if choice.channel == Channel.EMAIL and link_channel != Channel.EMAIL and confirmation.double_opt_in():
                    if confirmation.request_confirmation(contact, source=SOURCE, proof=proof, at=at) is not None:
                        changed.append(choice.channel)
                    continue
                if set_consent(contact, choice.channel, ConsentStatus.SUBSCRIBED, source=SOURCE, proof=proof, at=at):
                    changed.append(choice.channel)
            elif (
                choice.channel not in chosen
                and (choice.subscribed or choice.pending)
                and unsubscribe(contact, choice.channel, delivery=delivery, link_channel=link_channel, proof=proof, at=at)
            ):
                changed.append(choice.channel)
    logger.info("contact %s saved preferences %s, changed %s", contact.pk, sorted(chosen), changed)
    return changed


def leave_everything(
    contact: Contact, *, delivery: Delivery | None, link_channel: str, proof: str, at: datetime | None = None
) -> list[str]:
    """Unsubscribe the contact from every channel, recorded even where no consent was given; return the changed channels."""
    at = at or timezone.now()
    with transaction.atomic():
        changed = [
            channel.value
            for channel in Channel
            if unsubscribe(contact, channel, delivery=delivery, link_channel=link_channel, proof=proof, at=at)
        ]
    logger.info("contact %s left every channel, changed %s", contact.pk, changed)
    return changed


def unsubscribe(
    contact: Contact, channel: str, *, delivery: Delivery | None, link_channel: str, proof: str, at: datetime
) -> bool:
    # The channel of the link the contact came from is marked on that delivery and counted for its step.
    source_delivery = delivery if channel == link_channel else None
    return tracking.record_unsubscribe(source_delivery, contact, channel, source=SOURCE, proof=proof, at=at)

"""Customer topics: profile, tags, marketing consent and order totals from Shopify's customer records.

Since API version 2025-01 customer payloads no longer carry tags, consent or order totals; those
arrive on customer.tags_added/removed, the two consent topics and customers/purchasing_summary.
Older payloads (2024-10 and before) still carry them, so both shapes are read.
"""

import logging
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from contacts import catalogue, vip
from contacts.consent import STATUS_FIELDS, set_consent
from contacts.identity import IdentityError, normalize_email
from contacts.models import Channel, ConsentRecord, ConsentStatus, Contact, Event, Tag
from contacts.shopify.identities import Identity, customer_identity, find_contacts, read_identity, resolve_contact
from contacts.shopify.payload import PayloadError, read_currency, read_money, read_object, read_quantity, read_text, read_time
from contacts.shopify.webhook import Outcome, Webhook

logger = logging.getLogger(__name__)

# Shopify consent states (email_marketing_consent.state, sms_marketing_consent.state). The others
# leave the contact as it is: not_subscribed means never asked, and redacted and invalid carry no decision.
CONSENT_STATES = {
    "subscribed": ConsentStatus.SUBSCRIBED,
    "pending": ConsentStatus.PENDING,
    "unsubscribed": ConsentStatus.UNSUBSCRIBED,
}
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
# Fields of a customer's default address copied to the contact column of the same name.
ADDRESS_FIELDS = ("company", "address1", "address2", "city", "province_code", "country_code", "zip")
MAX_TAG_LENGTH = Tag._meta.get_field("name").max_length


def handle_customer(webhook: Webhook) -> Outcome:
    """customers/create and customers/update: the profile, and in older payloads tags, consent and totals."""
    customer = webhook.payload
    identity = customer_identity(webhook.webhook_id, customer)
    if not identity:
        return Outcome(detail="no customer id, email or phone; skipped")

    contact = resolve_contact(identity)
    done = []
    changed = apply_profile(contact, customer, update_email=True)
    if changed:
        done.append(f"profile fields {', '.join(changed)}")

    added = add_tags(contact, split_tags(customer.get("tags")))
    if added:
        done.append(f"{added} tags added")

    for channel in apply_customer_consent(contact, customer, webhook):
        done.append(f"{channel} consent changed")

    if "orders_count" in customer or "total_spent" in customer:
        apply_order_totals(
            contact,
            count=read_quantity(customer.get("orders_count")),
            spent=read_money(customer.get("total_spent"), "total_spent"),
            currency=read_currency(customer.get("currency")),
        )
        done.append("order totals set")

    return Outcome(detail=f"contact {contact.pk}: {'; '.join(done) or 'unchanged'}")


def handle_customer_deleted(webhook: Webhook) -> Outcome:
    """customers/delete: keep the contact, because customers/redact is Shopify's request to erase it."""
    identity = read_identity(webhook.webhook_id, customer_id=webhook.payload.get("id"))
    contacts = find_contacts(identity) if identity else []
    ids = [contact.pk for contact in contacts]
    return Outcome(
        detail=f"customer {identity.external_id or '(no id)'} deleted in the shop; contacts {ids} kept until a redact request"
    )


def handle_tags(webhook: Webhook) -> Outcome:
    """customer.tags_added and customer.tags_removed, which name the customer by GraphQL id."""
    payload = webhook.payload
    identity = read_identity(webhook.webhook_id, customer_id=payload.get("customerId"))
    if not identity:
        raise PayloadError("customerId", "missing; Shopify names the customer as gid://shopify/Customer/<id>")
    names = split_tags(payload.get("tags"))

    contact = resolve_contact(identity)
    if webhook.topic == "customer.tags_removed":
        removed = remove_tags(contact, names)
        return Outcome(detail=f"contact {contact.pk}: {removed} tags removed")
    added = add_tags(contact, names)
    return Outcome(detail=f"contact {contact.pk}: {added} tags added")


def handle_email_consent(webhook: Webhook) -> Outcome:
    """customers_email_marketing_consent/update: an explicit email consent change in the shop."""
    payload = webhook.payload
    identity = read_identity(webhook.webhook_id, customer_id=payload.get("customer_id"), emails=(payload.get("email_address"),))
    return handle_consent(webhook, identity, Channel.EMAIL, read_object(payload, "email_marketing_consent"))


def handle_sms_consent(webhook: Webhook) -> Outcome:
    """customers_marketing_consent/update: an explicit SMS consent change in the shop."""
    payload = webhook.payload
    identity = read_identity(webhook.webhook_id, customer_id=payload.get("id"), phones=(payload.get("phone"),))
    return handle_consent(webhook, identity, Channel.SMS, read_object(payload, "sms_marketing_consent"))


def handle_consent(webhook: Webhook, identity: Identity, channel: str, consent: dict[str, Any]) -> Outcome:
    if not identity:
        return Outcome(detail="no customer id, email or phone; skipped")

    contact = resolve_contact(identity)
    changed = apply_consent_state(contact, channel, consent, webhook, explicit=True)
    status = getattr(contact, STATUS_FIELDS[Channel(channel)])
    return Outcome(detail=f"contact {contact.pk}: {channel} consent {'set to' if changed else 'stays'} {status}")


def handle_purchasing_summary(webhook: Webhook) -> Outcome:
    """customers/purchasing_summary: the shop's order count and amount spent for one customer."""
    payload = webhook.payload
    identity = read_identity(webhook.webhook_id, customer_id=payload.get("customerId"))
    if not identity:
        raise PayloadError("customerId", "missing; Shopify names the customer as gid://shopify/Customer/<id>")
    spent = read_object(payload, "amountSpent")

    contact = resolve_contact(identity)
    apply_order_totals(
        contact,
        count=read_quantity(payload.get("numberOfOrders")),
        spent=read_money(spent.get("amount"), "amountSpent.amount"),
        currency=read_currency(spent.get("currencyCode")),
    )
    return Outcome(detail=f"contact {contact.pk}: order totals set")


def apply_profile(contact: Contact, customer: dict[str, Any], *, update_email: bool = False, locale: Any = None) -> list[str]:
    """Copy the customer's name, language and default address onto the contact; return the changed fields.

    Shopify's customer record is the newer truth for these fields, so a value it sends replaces
    ours, but an empty one never clears ours. With ``update_email`` a changed email address is
    taken over unless another contact already has it.
    """
    address = read_object(customer, "default_address")
    values = {
        "first_name": read_text(customer.get("first_name")),
        "last_name": read_text(customer.get("last_name")),
        "language": language_code(customer.get("locale") or locale),
    }
    for name in ADDRESS_FIELDS:
        values[name] = read_text(address.get(name))
    values["country_code"] = values["country_code"].upper()
    if not contact.note:
        values["note"] = read_text(customer.get("note"))

    changed = []
    for name, value in values.items():
        max_length = Contact._meta.get_field(name).max_length
        value = value[:max_length] if max_length else value
        if value and getattr(contact, name) != value:
            setattr(contact, name, value)
            changed.append(name)

    if update_email:
        email = new_email(contact, customer.get("email"))
        if email:
            contact.email = email
            changed.append("email")

    if changed:
        contact.save(update_fields=[*changed, "updated_at"])
    return changed


def new_email(contact: Contact, raw: Any) -> str:
    """Return the customer's email when it differs from the contact's and no other contact has it, else ""."""
    text = read_text(raw)
    if not text:
        return ""
    try:
        email = normalize_email(text)
    except IdentityError:
        return ""
    if email == contact.email or Contact.objects.filter(email=email).exclude(pk=contact.pk).exists():
        return ""
    return email


def language_code(raw: Any) -> str:
    """Return a Shopify locale such as "nl" or "en-US" as a language code, or "" when it is not one."""
    value = read_text(raw).lower().replace("_", "-")
    return value if LANGUAGE_PATTERN.match(value) and len(value) <= 10 else ""


def split_tags(raw: Any) -> list[str]:
    """Return tag names from Shopify's comma-separated string or a list, without blanks or repeats."""
    if raw is None:
        return []
    if isinstance(raw, str):
        parts = raw.split(",")
    elif isinstance(raw, list):
        parts = raw
    else:
        return []

    names = []
    for part in parts:
        name = read_text(part)
        if not name:
            continue
        if len(name) > MAX_TAG_LENGTH:
            logger.warning("tag %r... is longer than %s characters and was left out", name[:20], MAX_TAG_LENGTH)
            continue
        if name not in names:
            names.append(name)
    return names


def add_tags(contact: Contact, names: list[str]) -> int:
    """Add the tags to the contact, creating unknown ones; return how many the contact did not have."""
    if not names:
        return 0
    existing = set(contact.tags.filter(name__in=names).values_list("name", flat=True))
    tags = [Tag.objects.get_or_create(name=name)[0] for name in names if name not in existing]
    contact.tags.add(*tags)
    return len(tags)


def remove_tags(contact: Contact, names: list[str]) -> int:
    tags = list(contact.tags.filter(name__in=names))
    contact.tags.remove(*tags)
    return len(tags)


def apply_customer_consent(contact: Contact, customer: dict[str, Any], webhook: Webhook) -> list[str]:
    """Apply the consent a customer object carries (API 2024-10 and older); return the channels that changed."""
    changed = []
    for channel, name in ((Channel.EMAIL, "email_marketing_consent"), (Channel.SMS, "sms_marketing_consent")):
        if apply_consent_state(contact, channel, read_object(customer, name), webhook, explicit=False):
            changed.append(channel)
    return changed


def apply_consent_state(contact: Contact, channel: str, consent: dict[str, Any], webhook: Webhook, *, explicit: bool) -> bool:
    """Apply a Shopify consent object ({"state", "opt_in_level", "consent_updated_at"}); return whether it changed.

    ``explicit`` marks the consent topics, which report a change that just happened. A customer
    record's embedded consent is only the current state, which Shopify sends again on every profile edit.
    """
    status = CONSENT_STATES.get(read_text(consent.get("state")).lower())
    if status is None:
        return False

    at = read_time(consent.get("consent_updated_at"), webhook.received_at)
    if at is None and explicit:
        at = webhook.occurred_at
    proof = webhook.proof
    level = read_text(consent.get("opt_in_level"), 50)
    if level:
        proof = f"{proof}, opt-in level {level}"
    return change_consent(contact, channel, status, webhook, at=at, proof=proof)


def change_consent(contact: Contact, channel: str, status: str, webhook: Webhook, *, at: datetime | None, proof: str) -> bool:
    """Apply a consent status from Shopify through set_consent; return whether it changed.

    A withdrawal always applies. A subscription never overrides an unsubscribe recorded here
    unless Shopify dates it later. Our unsubscribe link does not write back to Shopify, so a
    customer record or checkout may still report "subscribed" long after the contact left.
    """
    if ConsentRecord.objects.filter(
        contact=contact, channel=channel, source=Event.Source.SHOPIFY, proof__startswith=webhook.proof
    ).exists():
        logger.info("webhook %s: contact %s %s consent already applied", webhook.webhook_id, contact.pk, channel)
        return False

    if status != ConsentStatus.UNSUBSCRIBED:
        address = contact.email if channel == Channel.EMAIL else contact.phone
        if not address:
            logger.info("webhook %s: contact %s has no %s address, consent not recorded", webhook.webhook_id, contact.pk, channel)
            return False
        field = STATUS_FIELDS[Channel(channel)]
        current = Contact.objects.filter(pk=contact.pk).values_list(field, flat=True).first()
        if current == ConsentStatus.UNSUBSCRIBED:
            last_change = contact.consent_records.filter(channel=channel).values_list("occurred_at", flat=True).first()
            if at is None or (last_change is not None and at <= last_change):
                logger.info(
                    "webhook %s: contact %s stays unsubscribed from %s; Shopify's consent is not newer",
                    webhook.webhook_id,
                    contact.pk,
                    channel,
                )
                return False

    return set_consent(contact, channel, status, source=Event.Source.SHOPIFY, proof=proof, at=at or webhook.occurred_at)


def apply_order_totals(contact: Contact, *, count: int, spent: Decimal | None, currency: str) -> None:
    """Set the contact's order count and amount spent to the shop's totals.

    The inbox still adds order events stored but not yet processed, so those are subtracted here,
    under a lock on the contact row that the inbox's update also takes. NOTE: an order whose
    orders/create arrives after this summary is counted twice until the next summary corrects it.
    """
    with transaction.atomic():
        Contact.objects.select_for_update().filter(pk=contact.pk).values_list("pk", flat=True).first()
        pending = contact.events.filter(type__in=catalogue.ORDER_EVENT_TYPES, processed_at__isnull=True).aggregate(
            count=Count("id"), total=Sum("value")
        )
        values: dict[str, Any] = {"order_count": max(count - pending["count"], 0)}
        if spent is not None:
            values["total_spent"] = max(spent - (pending["total"] or Decimal("0")), Decimal("0"))
        if currency:
            values["currency"] = currency
        for name, value in values.items():
            setattr(contact, name, value)
        contact.save(update_fields=[*values, "updated_at"])
        vip.update_tiers(Contact.objects.filter(pk=contact.pk), now=timezone.now())

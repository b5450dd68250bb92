"""Whose webhook is it: identities read from Shopify payloads, and the contacts they resolve to."""

import logging
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from contacts.identity import IdentityError, get_or_create_contact, normalize_email, normalize_external_id, normalize_phone
from contacts.models import Contact
from contacts.shopify.payload import read_id, read_object, read_text

logger = logging.getLogger(__name__)

# The attribute that marks a contact as a Shopify customer, holding the customer id. shop/redact
# erases contacts that carry it, so it is set on every contact a Shopify customer id resolved to.
CUSTOMER_ATTRIBUTE = "shopify_customer_id"


@dataclass(frozen=True)
class Identity:
    """A customer as a webhook names them: normalised values, "" for each one it lacks."""

    external_id: str = ""
    email: str = ""
    phone: str = ""

    def __bool__(self) -> bool:
        return bool(self.external_id or self.email or self.phone)


def read_identity(
    webhook_id: str,
    *,
    customer_id: Any = None,
    emails: tuple[Any, ...] = (),
    phones: tuple[Any, ...] = (),
    region: str = "",
) -> Identity:
    """Return the customer id and the first valid email and phone number among the candidates.

    An invalid address or number is left out with a warning instead of failing the webhook, so the
    rest of what Shopify sent is still stored. Values are not logged because they are personal data.
    """
    external_id = ""
    raw_id = read_id(customer_id, "customer id")
    if raw_id:
        try:
            external_id = normalize_external_id(raw_id)
        except IdentityError:
            logger.warning("webhook %s: the customer id cannot be stored as an external id; left out", webhook_id)

    email = ""
    for candidate in emails:
        text = read_text(candidate)
        if not text:
            continue
        try:
            email = normalize_email(text)
            break
        except IdentityError:
            logger.warning("webhook %s: an invalid email address was left out", webhook_id)

    phone = ""
    for candidate in phones:
        text = read_text(candidate)
        if not text:
            continue
        try:
            phone = normalize_phone(text, region or None)
            break
        except IdentityError:
            logger.warning("webhook %s: an invalid phone number was left out", webhook_id)

    return Identity(external_id=external_id, email=email, phone=phone)


def customer_identity(webhook_id: str, customer: dict[str, Any], *, email: Any = None, phone: Any = None) -> Identity:
    """Return the identity of a REST customer object, falling back to the order's or checkout's email and phone.

    The customer's own address comes first because the shop's customer record contains it. A phone
    number without a country code is read in the country of the customer's default address.
    """
    address = read_object(customer, "default_address")
    return read_identity(
        webhook_id,
        customer_id=customer.get("id"),
        emails=(customer.get("email"), email),
        phones=(customer.get("phone"), phone),
        region=read_text(address.get("country_code")),
    )


def resolve_contact(identity: Identity) -> Contact:
    """Return the contact for the identity, created when new, and mark it with its Shopify customer id.

    Two webhooks about one new customer racing each other can both try to create the contact. The
    loser raises IntegrityError, the view returns 500, and Shopify's retry then finds the contact.
    """
    contact, created = get_or_create_contact(email=identity.email, phone=identity.phone, external_id=identity.external_id)
    if created:
        logger.info("contact %s created from a Shopify webhook", contact.pk)

    if identity.external_id and contact.attributes.get(CUSTOMER_ATTRIBUTE) != identity.external_id:
        contact.attributes = {**contact.attributes, CUSTOMER_ATTRIBUTE: identity.external_id}
        contact.save(update_fields=["attributes", "updated_at"])
    return contact


def identity_of(contact: Contact) -> Identity:
    """Return the identities a contact already has, to store an event for it through the inbox."""
    return Identity(external_id=contact.external_id or "", email=contact.email or "", phone=contact.phone or "")


def find_contacts(identity: Identity) -> list[Contact]:
    """Return every contact that any of the identities points to, without creating one."""
    match = Q()
    for field in ("external_id", "email", "phone"):
        value = getattr(identity, field)
        if value:
            match |= Q(**{field: value})
    if not match:
        return []
    return list(Contact.objects.filter(match).order_by("pk"))

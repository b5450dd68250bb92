"""Normalising identities (email, phone, external id) and finding the contact they belong to."""

import logging

import phonenumbers
from django.conf import settings
from email_validator import EmailNotValidError, validate_email

from contacts.models import Contact

logger = logging.getLogger(__name__)

# Contact.external_id is a CharField(max_length=100).
MAX_EXTERNAL_ID_LENGTH = 100


class IdentityError(ValueError):
    """An email, phone number or external id that cannot be normalised; the message names the value."""


def normalize_email(raw: str) -> str:
    """Return the address in lower case, checking its syntax only (no DNS lookup)."""
    value = (raw or "").strip()
    if not value:
        return ""
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise IdentityError(f"invalid email address {value!r}: {error}") from None
    return result.normalized.lower()


def normalize_phone(raw: str, region: str | None = None) -> str:
    """Return the number in E.164 form; numbers without a country code are read in ``region``."""
    value = (raw or "").strip().lstrip("'")
    if not value:
        return ""
    region = (region or settings.MKTAUTO_DEFAULT_PHONE_REGION or "NL").upper()
    # Brevo and some exports write the country code without "+", e.g. 4930555501.
    if value.isdigit() and len(value) > 10 and not value.startswith("0"):
        value = "+" + value
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as error:
        raise IdentityError(f"invalid phone number {value!r}: {error}") from None
    if not phonenumbers.is_possible_number(number):
        raise IdentityError(f"invalid phone number {value!r}: wrong length for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_external_id(raw: str) -> str:
    """Return the external id without surrounding spaces; raise IdentityError when it cannot be stored."""
    value = (raw or "").strip()
    if len(value) > MAX_EXTERNAL_ID_LENGTH:
        raise IdentityError(
            f"external id {value[:20]!r}... is {len(value)} characters long; at most {MAX_EXTERNAL_ID_LENGTH} fit"
        )
    if any(ord(character) < 32 for character in value):
        raise IdentityError(f"external id {value!r} contains a control character")
    return value


def find_contact(*, email: str = "", phone: str = "", external_id: str = "") -> Contact | None:
    """Find a contact by external id, then email, then phone (values already normalised)."""
    for field, value in (("external_id", external_id), ("email", email), ("phone", phone)):
        if value:
            contact = Contact.objects.filter(**{field: value}).first()
            if contact is not None:
                return contact
    return None


def get_or_create_contact(
    *, email: str = "", phone: str = "", external_id: str = "", fill_missing: bool = True
) -> tuple[Contact, bool]:
    """Find the contact for these identities or create one.

    With ``fill_missing`` an identity the found contact lacks is added to it. Callers that may not
    change contact details (a storefront pixel key) pass False, so a known customer's record is
    never extended with an address another sender chose.
    """
    contact = find_contact(email=email, phone=phone, external_id=external_id)
    if contact is None:
        contact = Contact.objects.create(email=email or None, phone=phone or None, external_id=external_id or None)
        logger.info("contact %s created from an event identity", contact.pk)
        return contact, True
    if not fill_missing:
        return contact, False

    missing = {}
    for field, value in (("email", email), ("phone", phone), ("external_id", external_id)):
        # Only fill a gap, and only when no other contact already owns the value.
        if value and not getattr(contact, field) and not Contact.objects.filter(**{field: value}).exists():
            missing[field] = value
    if missing:
        for field, value in missing.items():
            setattr(contact, field, value)
        contact.save(update_fields=[*missing, "updated_at"])
        logger.info("contact %s gained identities %s from an event", contact.pk, sorted(missing))
    return contact, False

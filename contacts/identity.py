"""Normalising identities (email, phone, external id) and finding the contact they belong to."""

import phonenumbers
from django.conf import settings
from email_validator import EmailNotValidError, validate_email

from contacts.models import Contact


class IdentityError(ValueError):
    """An email or phone number that cannot be normalised; the message names the value."""


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


def find_contact(*, email: str = "", phone: str = "", external_id: str = "") -> Contact | None:
    """Find a contact by external id, then email, then phone (values already normalised)."""
    for field, value in (("external_id", external_id), ("email", email), ("phone", phone)):
        if value:
            contact = Contact.objects.filter(**{field: value}).first()
            if contact is not None:
                return contact
    return None


def get_or_create_contact(*, email: str = "", phone: str = "", external_id: str = "") -> tuple[Contact, bool]:
    """Find the contact for these identities or create one; fill identities the contact lacks."""
    contact = find_contact(email=email, phone=phone, external_id=external_id)
    if contact is None:
        contact = Contact.objects.create(email=email or None, phone=phone or None, external_id=external_id or None)
        return contact, True

    missing = {}
    for field, value in (("email", email), ("phone", phone), ("external_id", external_id)):
        # Only fill a gap, and only when no other contact already owns the value.
        if value and not getattr(contact, field) and not Contact.objects.filter(**{field: value}).exists():
            missing[field] = value
    if missing:
        for field, value in missing.items():
            setattr(contact, field, value)
        contact.save(update_fields=[*missing, "updated_at"])
    return contact, False

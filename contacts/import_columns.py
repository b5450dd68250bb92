"""The columns of contact import files: one alias table, and the cleaning of each row's cells.

Shopify, Mailchimp, Brevo and Dutch spreadsheets name the same column differently ("Email",
"Email Address", "EMAIL", "E-mail"). Headers are matched through ``COLUMN_ALIASES`` after
``header_key`` drops case, hyphens, underscores, dots and spaces, so "E-mail", "EMAIL" and
"e_mail" are one name, and so are "First Name" and "FIRSTNAME". A column that matches no alias is stored in ``Contact.attributes``:
a Shopify metafield column ``Label (customer.metafields.NAMESPACE.KEY)`` under
``NAMESPACE.KEY``, any other column under its header in lower case with runs of other
characters than letters and digits replaced by one underscore ("Tax Exempt" -> ``tax_exempt``).
"""

import json
import logging
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from contacts.identity import IdentityError, normalize_email, normalize_phone
from contacts.models import Channel, ConsentStatus, Contact, Tag

logger = logging.getLogger(__name__)

# Target -> header aliases. When a file has several columns for one target, the column whose
# alias comes first wins for the whole file and the others go to attributes. So a Dutch file
# with both "Mobiel" and "Telefoon" uses the mobile number, which is the one that receives SMS.
# Each target's own name ("first_name", "email_consent") is accepted too, so a file exported
# with ContactResource imports again.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("Email", "Email Address", "E-mailadres"),
    "phone": (
        "Mobiel",
        "Mobiel nummer",
        "Mobiele telefoon",
        "Mobile",
        "Mobile phone",
        "GSM",
        "SMS",
        "Phone",
        "Phone number",
        "Telefoon",
        "Telefoonnummer",
        "Tel",
    ),
    "external_id": ("External ID", "EXT_ID", "Customer ID", "Klantnummer", "Klant ID", "Customer number", "CONTACT ID"),
    "first_name": ("First Name", "Voornaam", "Given name", "Roepnaam"),
    "name_prefix": ("Tussenvoegsel", "Tussenvoegsels"),
    "last_name": ("Last Name", "Achternaam", "Surname", "Family name"),
    "company": ("Company", "Default Address Company", "Bedrijf", "Bedrijfsnaam", "Organisatie", "Organization"),
    "address1": ("Address1", "Default Address Address1", "Address", "Adres"),
    "street": ("Straat", "Street"),
    "house_number": ("Huisnummer", "House number"),
    "house_number_suffix": ("Toevoeging", "Huisnummertoevoeging"),
    "address2": ("Address2", "Default Address Address2", "Adres 2", "Adresregel 2"),
    "city": ("City", "Default Address City", "Plaats", "Woonplaats", "Stad", "Town"),
    "zip": ("Zip", "Default Address Zip", "Postcode", "Postal code", "Zip code"),
    "province_code": ("Province Code", "Default Address Province Code", "Provinciecode", "State code"),
    "country_code": ("Country Code", "Default Address Country Code", "Landcode", "CC"),
    "language": ("Language", "Taal"),
    "time_zone": ("Time zone", "Tijdzone", "CONTACT_TIMEZONE"),
    "note": ("Note", "Notes", "Notitie", "Opmerking", "Opmerkingen"),
    "tags": ("Tags", "Tag", "Labels"),
    "attributes": ("Attributes",),
    "total_spent": ("Total Spent", "Totaal besteed"),
    "order_count": ("Total Orders", "Aantal bestellingen", "Orders", "Order count"),
    "email_consent": (
        "Accepts Email Marketing",
        "Accepts Marketing",
        "OPT_IN",
        "Email consent",
        "Nieuwsbrief",
        "Toestemming e-mail",
        "E-mail toestemming",
    ),
    "sms_consent": ("Accepts SMS Marketing", "SMS consent", "Toestemming SMS"),
    "whatsapp_consent": ("Accepts WhatsApp Marketing", "WhatsApp consent", "Toestemming WhatsApp"),
    # Brevo's blocklist flags: "yes" withdraws consent, "no" leaves consent unchanged.
    "email_blacklisted": ("EMAIL_BLACKLISTED",),
    "sms_blacklisted": ("SMS_BLACKLISTED",),
}

IDENTITY_TARGETS = ("email", "external_id", "phone")
# Plain text columns of Contact that an import fills. Their maximum lengths come from the model.
TEXT_TARGETS = ("first_name", "last_name", "company", "address1", "address2", "city", "zip", "province_code", "note")
CONSENT_TARGETS = {
    "email_consent": (Channel.EMAIL, False),
    "sms_consent": (Channel.SMS, False),
    "whatsapp_consent": (Channel.WHATSAPP, False),
    "email_blacklisted": (Channel.EMAIL, True),
    "sms_blacklisted": (Channel.SMS, True),
}
# Brevo writes SMS numbers with their country code but without "+", e.g. 4930555501.
INTERNATIONAL_DIGITS_HEADERS = {"sms"}

# Plain strings, because reading a member of a TextChoices class costs a descriptor call per row.
SUBSCRIBED = ConsentStatus.SUBSCRIBED.value
UNSUBSCRIBED = ConsentStatus.UNSUBSCRIBED.value
TRUE_WORDS = {"yes", "y", "ja", "j", "true", "waar", "1", "subscribed"}
FALSE_WORDS = {"no", "n", "nee", "false", "onwaar", "0", "unsubscribed"}
# An exported "unknown" or "pending" status re-imports as no change.
NEUTRAL_WORDS = {"unknown", "pending"}

METAFIELD_HEADER = re.compile(r"\((?:customer\.)?metafields\.([^()]+)\)\s*$", re.IGNORECASE)
# Shopify and spreadsheets put an apostrophe before numbers to keep them text ('7985351721238,
# '+31612345678, '04616). Only an apostrophe before a digit, "+" or "(" is removed, because Dutch
# names and places start with one ('t Hart, 's-Hertogenbosch).
SPREADSHEET_TEXT_PREFIX = re.compile(r"^'(?=[\d+(])")
COUNTRY_CODE = re.compile(r"^[A-Za-z]{2}$")


class ImportFileError(ValueError):
    """A file whose columns make an import impossible; the message names them and the fix."""


def header_key(header: str) -> str:
    """Return the header folded for matching: lower case without spaces, "-", "_" and "."."""
    return re.sub(r"[-_.\s]+", "", header.casefold())


def attribute_key(header: str, position: int) -> str:
    """Return the attributes key for a column that matches no alias."""
    metafield = METAFIELD_HEADER.search(header)
    if metafield:
        return re.sub(r"_{2,}", "_", metafield.group(1).strip())
    key = re.sub(r"\W+", "_", header.casefold()).strip("_")
    # A double underscore would read as a nested lookup in the condition language.
    key = re.sub(r"_{2,}", "_", key)
    return key or f"column_{position}"


ALIAS_TARGETS: dict[str, tuple[str, int]] = {}
for _target, _aliases in COLUMN_ALIASES.items():
    for _priority, _alias in enumerate((*_aliases, _target)):
        ALIAS_TARGETS.setdefault(header_key(_alias), (_target, _priority))


@cache
def max_lengths() -> dict[str, int]:
    names = (*IDENTITY_TARGETS, *TEXT_TARGETS, "language", "time_zone")
    return {name: Contact._meta.get_field(name).max_length or 0 for name in names} | {
        "tag": Tag._meta.get_field("name").max_length
    }


@cache
def time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One value of one row that was not imported, or the reason a whole row was skipped.

    ``row`` is the number a spreadsheet shows (the header is row 1). ``column`` is the header as
    written in the file, empty when the problem concerns the row as a whole.
    """

    row: int
    column: str
    value: str
    reason: str
    skipped: bool


@dataclass(frozen=True)
class ColumnMap:
    """The mapping from a file's columns to contact fields."""

    headers: list[str]
    targets: dict[str, int]
    attributes: list[tuple[int, str]]
    header_width: int
    is_shopify_export: bool
    phone_has_international_digits: bool
    # The TEXT_TARGETS and CONSENT_TARGETS the file has columns for, so rows skip the others.
    text_targets: tuple[str, ...] = ()
    consent_targets: tuple[str, ...] = ()

    def header(self, target: str) -> str:
        return self.headers[self.targets[target]] if target in self.targets else ""


@dataclass(slots=True)
class ContactRow:
    """One data row, cleaned: normalised identities and the values to apply."""

    number: int
    email: str = ""
    phone: str = ""
    external_id: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    consent: dict[str, str] = field(default_factory=dict)
    order_count: int | None = None
    total_spent: Decimal | None = None
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return any(problem.skipped for problem in self.problems)


def map_columns(headers: Sequence[str], header_width: int | None = None) -> ColumnMap:
    """Map a file's headers to contact fields; raise ImportFileError when no identity column exists."""
    # Spreadsheet formats other than CSV may give None or numbers as headers.
    headers = [cell_text(header) for header in headers]
    header_width = len(headers) if header_width is None else header_width
    chosen: dict[str, tuple[int, int]] = {}
    unmatched: list[int] = []
    for position, header in enumerate(headers[:header_width]):
        match = ALIAS_TARGETS.get(header_key(header)) if header else None
        if match is None:
            unmatched.append(position)
            continue
        target, priority = match
        previous = chosen.get(target)
        if previous is None or priority < previous[1]:
            if previous is not None:
                unmatched.append(previous[0])
            chosen[target] = (position, priority)
        else:
            unmatched.append(position)

    targets = {target: position for target, (position, _priority) in chosen.items()}
    if not any(target in targets for target in IDENTITY_TARGETS):
        raise ImportFileError(
            _(
                "No column for email, phone or customer id found. The header row contains: %(headers)s. "
                "Name a column Email, E-mail, Phone, Telefoon or Customer ID, or check that the file "
                "is a contact list."
            )
            % {"headers": ", ".join(repr(header) for header in headers[:header_width])}
        )

    attributes = [(position, attribute_key(headers[position], position + 1)) for position in sorted(unmatched)]
    keys = {header_key(header) for header in headers}
    return ColumnMap(
        headers=list(headers),
        targets=targets,
        attributes=attributes,
        header_width=header_width,
        # "Tax Exempt" next to "Total Spent" appears only in Shopify's customer export.
        is_shopify_export="totalspent" in keys and "taxexempt" in keys,
        phone_has_international_digits="phone" in targets
        and header_key(headers[targets["phone"]]) in INTERNATIONAL_DIGITS_HEADERS,
        text_targets=tuple(target for target in TEXT_TARGETS if target in targets),
        consent_targets=tuple(target for target in CONSENT_TARGETS if target in targets),
    )


def cell_text(value: Any) -> str:
    """Return a cell as stripped text; spreadsheet formats other than CSV give numbers and dates."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value).strip()


def strip_text_prefix(value: str) -> str:
    """Return the value without the apostrophe that keeps a number text in a spreadsheet."""
    if value[:1] == "'" and SPREADSHEET_TEXT_PREFIX.match(value):
        return value[1:]
    return value


def parse_decimal(raw: str) -> Decimal:
    """Parse an amount like 13175.00, 1.234,56 or 12,50; a lone comma is a decimal comma."""
    text = raw.replace("€", "").replace("$", "").replace(" ", "")
    decimal_comma = "," in text and ("." not in text or text.rfind(",") > text.rfind("."))
    if decimal_comma:
        return Decimal(text.replace(".", "").replace(",", "."))
    return Decimal(text.replace(",", ""))


def parse_consent(raw: str, inverse: bool) -> str | None:
    """Return the consent status a cell requests, or None for no change; raise ValueError for other words."""
    word = raw.casefold()
    if word in NEUTRAL_WORDS:
        return None
    if word in TRUE_WORDS:
        return UNSUBSCRIBED if inverse else SUBSCRIBED
    if word in FALSE_WORDS:
        return None if inverse else UNSUBSCRIBED
    raise ValueError(raw)


def add_problem(row: ContactRow, columns: ColumnMap, target: str, value: str, reason: str, *, skipped: bool = False) -> None:
    row.problems.append(RowProblem(row.number, columns.header(target), value, reason, skipped))


def identity_detail(error: IdentityError, value: str) -> str:
    """Return the library's reason from an IdentityError, which reads "invalid email address 'x': reason"."""
    message = str(error)
    marker = f"{value!r}: "
    position = message.find(marker)
    return message[position + len(marker) :] if position >= 0 else message


def clean_row(columns: ColumnMap, number: int, cells: Sequence[Any]) -> ContactRow | None:
    """Clean one data row; return None for a blank row, which is not a contact."""
    texts = [cell.strip() if type(cell) is str else cell_text(cell) for cell in cells]
    if not any(texts):
        return None

    row = ContactRow(number=number)
    values = {target: texts[position] for target, position in columns.targets.items() if texts[position]}

    extra = [text for text in texts[columns.header_width :] if text]
    if extra:
        row.problems.append(
            RowProblem(
                number,
                "",
                " | ".join(extra),
                _(
                    "The row has more cells than the header row. A value probably contains the delimiter "
                    "without quotes around it; put the value in quotes or remove the delimiter."
                ),
                True,
            )
        )

    clean_identities(row, values, columns)
    clean_fields(row, values, columns)
    clean_consent(row, values, columns)
    clean_facts(row, values, columns)
    for position, key in columns.attributes:
        if texts[position]:
            row.attributes[key] = strip_text_prefix(texts[position])
    return row


def clean_identities(row: ContactRow, values: dict[str, str], columns: ColumnMap) -> None:
    raw_email = values.get("email", "")
    if raw_email:
        try:
            row.email = normalize_email(raw_email)
        except IdentityError as error:
            add_problem(
                row,
                columns,
                "email",
                raw_email,
                _("Not a valid email address (%(detail)s). Correct or remove it.")
                % {"detail": identity_detail(error, raw_email)},
                skipped=True,
            )

    country = values.get("country_code", "")
    region = country.upper() if COUNTRY_CODE.match(country) else settings.MKTAUTO_DEFAULT_PHONE_REGION
    raw_phone = values.get("phone", "")
    if raw_phone:
        phone_input = strip_text_prefix(raw_phone)
        if columns.phone_has_international_digits and phone_input.isdigit() and not phone_input.startswith("0"):
            phone_input = "+" + phone_input
        try:
            row.phone = normalize_phone(phone_input, region)
        except IdentityError as error:
            add_problem(
                row,
                columns,
                "phone",
                raw_phone,
                _("Not a valid phone number (%(detail)s). Write it with the country code, e.g. +31612345678, or remove it.")
                % {"detail": identity_detail(error, phone_input)},
                skipped=True,
            )

    raw_id = values.get("external_id", "")
    if raw_id:
        external_id = strip_text_prefix(raw_id)
        if len(external_id) > max_lengths()["external_id"]:
            add_problem(
                row,
                columns,
                "external_id",
                raw_id,
                _("The customer id is longer than %(max)s characters. Check that this is the id column.")
                % {"max": max_lengths()["external_id"]},
                skipped=True,
            )
        else:
            row.external_id = external_id

    has_identity = raw_email or raw_phone or raw_id
    if not has_identity:
        row.problems.append(
            RowProblem(
                row.number,
                columns.header("email") or columns.header("phone") or columns.header("external_id"),
                "",
                _("The row has no email address, phone number or customer id, so it cannot be matched to a contact."),
                True,
            )
        )


def clean_fields(row: ContactRow, values: dict[str, str], columns: ColumnMap) -> None:
    fields = row.fields
    limits = max_lengths()
    for target in columns.text_targets:
        value = values.get(target)
        if value:
            fields[target] = strip_text_prefix(value) if target == "zip" else value

    # Dutch files keep the tussenvoegsel ("van der") apart from the last name ("Berg").
    prefix = values.get("name_prefix", "")
    if prefix:
        fields["last_name"] = " ".join(part for part in (prefix, fields.get("last_name", "")) if part)
    if "address1" not in fields and ("street" in values or "house_number" in values):
        street = " ".join(values.get(part, "") for part in ("street", "house_number", "house_number_suffix"))
        fields["address1"] = " ".join(street.split())

    for target in list(fields):
        if len(fields[target]) > limits[target]:
            add_problem(
                row,
                columns,
                "name_prefix" if target == "last_name" and prefix else target,
                fields.pop(target),
                _("Longer than %(max)s characters, so it was not imported. Shorten it.") % {"max": limits[target]},
            )

    country = values.get("country_code", "")
    if country:
        if COUNTRY_CODE.match(country):
            fields["country_code"] = country.upper()
        else:
            add_problem(
                row,
                columns,
                "country_code",
                country,
                _("Not a two-letter country code such as NL or BE, so it was not imported."),
            )

    language = values.get("language", "")
    if language:
        if len(language) <= limits["language"]:
            fields["language"] = language.lower()
        else:
            add_problem(row, columns, "language", language, _("Not a language code such as nl or en, so it was not imported."))

    time_zone = values.get("time_zone", "")
    if time_zone:
        if time_zone in time_zone_names():
            fields["time_zone"] = time_zone
        else:
            add_problem(
                row, columns, "time_zone", time_zone, _("Not a time zone name such as Europe/Amsterdam, so it was not imported.")
            )

    raw_tags = values.get("tags", "")
    if raw_tags:
        seen: set[str] = set()
        for part in raw_tags.split(","):
            # Mailchimp writes tags as "VIP","Blog" inside one cell.
            name = part.strip().strip('"').strip()
            if not name or name.casefold() in seen:
                continue
            if len(name) > limits["tag"]:
                add_problem(
                    row,
                    columns,
                    "tags",
                    name,
                    _("A tag longer than %(max)s characters was not imported.") % {"max": limits["tag"]},
                )
                continue
            seen.add(name.casefold())
            row.tags.append(name)

    raw_attributes = values.get("attributes", "")
    if raw_attributes:
        try:
            attributes = json.loads(raw_attributes)
        except json.JSONDecodeError:
            attributes = None
        if isinstance(attributes, dict):
            row.attributes.update(attributes)
        else:
            add_problem(
                row,
                columns,
                "attributes",
                raw_attributes,
                _('Not a JSON object such as {"birthday": "1990-05-17"}, so it was not imported.'),
            )


def clean_consent(row: ContactRow, values: dict[str, str], columns: ColumnMap) -> None:
    for target in columns.consent_targets:
        raw = values.get(target, "")
        if not raw:
            continue
        channel, inverse = CONSENT_TARGETS[target]
        try:
            status = parse_consent(raw, inverse)
        except ValueError:
            add_problem(row, columns, target, raw, _("Not yes or no, so consent was left unchanged. Write yes, no, ja or nee."))
            continue
        if status is not None:
            # The explicit consent columns come before the blocklist flags in CONSENT_TARGETS, so a
            # blocklist "yes" withdraws consent even when the consent column contains yes.
            row.consent[channel] = status


def clean_facts(row: ContactRow, values: dict[str, str], columns: ColumnMap) -> None:
    raw_spent = values.get("total_spent", "")
    if raw_spent:
        try:
            spent = parse_decimal(raw_spent).quantize(Decimal("0.01"))
        except InvalidOperation:
            spent = None
        if spent is None or not spent.is_finite() or abs(spent) >= Decimal("1e12"):
            add_problem(
                row, columns, "total_spent", raw_spent, _("Not an amount such as 125.50 or 125,50, so it was not imported.")
            )
        else:
            row.total_spent = spent

    raw_count = values.get("order_count", "")
    if raw_count:
        try:
            count = Decimal(raw_count.replace(",", "."))
        except InvalidOperation:
            count = None
        if count is None or not count.is_finite() or count < 0 or count != count.to_integral_value() or count > 2**31 - 1:
            add_problem(row, columns, "order_count", raw_count, _("Not a whole number of orders, so it was not imported."))
        else:
            row.order_count = int(count)

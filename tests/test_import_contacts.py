"""Contact CSV import: formats, matching, consent, bad rows, dry runs, and the import_contacts command."""

import gc
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import tablib
import time_machine
from django.core.management import CommandError, call_command
from django.utils import translation

from contacts.consent import consent_withdrawn, set_consent
from contacts.csv_formats import CsvFileError
from contacts.importing import SpreadsheetCSV, import_contacts
from contacts.models import Channel, ConsentRecord, ConsentStatus, Contact, Tag
from contacts.resources import ContactImportResult, ContactResource

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data" / "csv"
PAKISTAN = "shopify_customers_export_2023_pakistan.csv"
COLOMBIA = "shopify_customers_export_metafields_colombia.csv"
CHILE = "shopify_customers_export_2023_chile.csv"
LEGACY = "shopify_customers_export_legacy_pre2022.csv"
DUTCH = "dutch_excel_windows1252_semicolon.csv"
BOM = "excel_utf8_bom_comma.csv"
BAD_ROWS = "bad_rows.csv"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def import_bytes(data: bytes, file_name: str = "upload.csv", *, dry_run: bool = False) -> ContactImportResult:
    dataset = SpreadsheetCSV().create_dataset(data)
    return ContactResource().import_data(dataset, dry_run=dry_run, file_name=file_name)


def import_file(name: str, *, dry_run: bool = False) -> ContactImportResult:
    return import_bytes((DATA / name).read_bytes(), name, dry_run=dry_run)


def run_command(*args: str) -> str:
    stdout = StringIO()
    call_command("import_contacts", *args, stdout=stdout)
    return stdout.getvalue()


def tag_names(contact: Contact) -> set[str]:
    return set(contact.tags.values_list("name", flat=True))


# Shopify customer exports


def test_shopify_export_creates_named_contacts():
    report = import_file(PAKISTAN).report

    carla = Contact.objects.get(email="carla.hendriks302@example.com")
    assert report.created == 3
    assert Contact.objects.count() == 3
    assert carla.first_name == "Carla"
    assert carla.last_name == "Hendriks"
    assert carla.city == "Sargodha"
    assert carla.country_code == "PK"
    assert carla.zip == "45502"


def test_shopify_export_row_without_email():
    import_file(PAKISTAN)

    angela = Contact.objects.get(external_id="7400000000001")
    assert angela.email is None
    assert angela.first_name == "Ángela"
    assert angela.phone == "+925555555501"


def test_shopify_export_phones_in_e164():
    import_file(COLOMBIA)

    assert Contact.objects.get(email="kees.smit102@example.com").phone == "+575555555502"
    assert Contact.objects.get(email="roos.peters103@example.com").phone == "+915555555503"
    assert Contact.objects.get(email="daan.odegaard101@example.com").phone is None


def test_shopify_apostrophe_prefix_stripped():
    import_file(COLOMBIA)

    kees = Contact.objects.get(email="kees.smit102@example.com")
    assert kees.external_id == "7200000032769"
    assert kees.attributes["default_address_phone"] == "5555555502"


def test_shopify_tags_split_on_commas():
    import_file(PAKISTAN)

    julia = Contact.objects.get(email="julia.garcia303@example.com")
    assert tag_names(julia) == {"Bronze VIP", "Inbox online store chat", "loyal-app_about_to_sleep"}
    assert Tag.objects.count() == 4


def test_shopify_consent_yes_and_no(t0):
    with time_machine.travel(t0, tick=False):
        import_file(PAKISTAN)

    carla = Contact.objects.get(email="carla.hendriks302@example.com")
    angela = Contact.objects.get(external_id="7400000000001")
    record = ConsentRecord.objects.get(contact=carla, channel=Channel.EMAIL)
    assert carla.email_consent == ConsentStatus.SUBSCRIBED
    assert carla.sms_consent == ConsentStatus.UNSUBSCRIBED
    assert angela.email_consent == ConsentStatus.UNSUBSCRIBED
    assert record.status == ConsentStatus.SUBSCRIBED
    assert record.source == "import"
    assert record.proof == f"file {PAKISTAN}, row 3"
    assert record.occurred_at == t0


def test_shopify_whatsapp_consent_and_metafields():
    import_file(COLOMBIA)

    kees = Contact.objects.get(email="kees.smit102@example.com")
    assert kees.whatsapp_consent == ConsentStatus.UNSUBSCRIBED
    assert "custom.empresa" not in kees.attributes
    assert kees.attributes["tax_exempt"] == "no"


def test_shopify_metafield_value_becomes_attribute():
    header = (DATA / COLOMBIA).read_text().splitlines()[0]
    data = f"{header}\n'7200000000099,Eva,Vos,eva@example.com,yes,,,,,,,,,,no,0.00,0,,no,,no,Ejemplo Ltda,Mayorista\n"

    import_bytes(data.encode())

    eva = Contact.objects.get(email="eva@example.com")
    assert eva.attributes["custom.empresa"] == "Ejemplo Ltda"
    assert eva.attributes["custom.tipo_de_cliente"] == "Mayorista"


def test_shopify_order_facts_on_new_contact():
    import_file(PAKISTAN)

    angela = Contact.objects.get(external_id="7400000000001")
    assert angela.order_count == 1
    assert angela.total_spent == Decimal("13175.00")


def test_shopify_legacy_header_accepts_marketing():
    report = import_file(LEGACY).report

    contact = Contact.objects.get(email="subscriber404@example.com")
    assert report.created == 6
    assert contact.email_consent == ConsentStatus.SUBSCRIBED


def test_shopify_chile_export_imports_every_row():
    report = import_file(CHILE).report

    assert report.created == 27
    assert report.skipped == 0
    assert Contact.objects.get(email="ines.berg9@example.com").first_name == "Inès"
    assert Contact.objects.get(email="ines.berg9@example.com").last_name == "van den Berg"


def test_shopify_us_phone_only_rows():
    report = import_file("shopify_customers_export_2023_us.csv").report

    quinten = Contact.objects.get(external_id="7300000229377")
    assert report.created == 10
    assert quinten.email is None
    assert quinten.phone == "+15555555508"
    assert quinten.province_code == "TX"


# Dutch spreadsheets


def test_dutch_windows1252_semicolon_file():
    result = import_file(DUTCH)

    jose = Contact.objects.get(email="jose.vanderberg@example.nl")
    chloe = Contact.objects.get(email="chloe.noel@example.nl")
    daan = Contact.objects.get(email="daan.hart@example.nl")
    assert result.report.created == 3
    assert jose.first_name == "José"
    assert jose.last_name == "van der Berg"
    assert jose.phone == "+31612345678"
    assert jose.zip == "1234 AB"
    assert chloe.first_name == "Chloë"
    assert chloe.last_name == "Noël"
    assert chloe.city == "'s-Hertogenbosch"
    assert daan.last_name == "'t Hart"


def test_dutch_file_consent_ja_nee_empty():
    import_file(DUTCH)

    assert Contact.objects.get(email="jose.vanderberg@example.nl").email_consent == ConsentStatus.SUBSCRIBED
    assert Contact.objects.get(email="chloe.noel@example.nl").email_consent == ConsentStatus.UNSUBSCRIBED
    assert Contact.objects.get(email="daan.hart@example.nl").email_consent == ConsentStatus.UNKNOWN
    assert ConsentRecord.objects.filter(contact__email="daan.hart@example.nl").count() == 0


def test_spreadsheet_format_detects_windows1252():
    dataset = SpreadsheetCSV().create_dataset((DATA / DUTCH).read_bytes())

    assert dataset.csv_layout.encoding == "cp1252"
    assert dataset.csv_layout.delimiter == ";"
    assert dataset.headers[0] == "Voornaam"
    assert dataset[1][2] == "Noël"


def test_utf8_bom_file():
    dataset = SpreadsheetCSV().create_dataset((DATA / BOM).read_bytes())
    import_file(BOM)

    zoe = Contact.objects.get(email="zoe.muller@example.com")
    assert dataset.csv_layout.encoding == "utf-8-sig"
    assert dataset.headers[0] == "Email"
    assert zoe.first_name == "Zoë"
    assert zoe.last_name == "Müller"
    assert tag_names(zoe) == {"vip", "nieuwsbrief"}


def test_tab_delimited_utf16_file():
    data = "E-mail\tVoornaam\r\nineke@example.nl\tIneke\r\n".encode("utf-16")

    dataset = SpreadsheetCSV().create_dataset(data)
    import_bytes(data)

    assert dataset.csv_layout.delimiter == "\t"
    assert Contact.objects.get(email="ineke@example.nl").first_name == "Ineke"


def test_excel_separator_hint_line():
    data = b"sep=;\r\nEmail;Plaats\r\nsem@example.nl;Gouda, Zuid-Holland\r\n"

    import_bytes(data)

    assert Contact.objects.get(email="sem@example.nl").city == "Gouda, Zuid-Holland"


def test_dutch_street_and_house_number_joined():
    data = b"E-mail;Straat;Huisnummer;Toevoeging\nlotte@example.nl;Dorpsstraat;12;A\n"

    import_bytes(data)

    assert Contact.objects.get(email="lotte@example.nl").address1 == "Dorpsstraat 12 A"


# Other exports


def test_brevo_export_semicolon_and_sms():
    import_file("brevo_contacts_export_semicolon_RECONSTRUCTED.csv")

    bram = Contact.objects.get(email="bram.de.vries@example.com")
    assert bram.phone == "+31600000002"
    assert bram.external_id == "CUST-0002"
    assert bram.last_name == "de Vries"
    assert bram.attributes["contact_id"] == "2"
    assert bram.time_zone == ""
    assert Contact.objects.get(email="anna.jansen@example.com").time_zone == "Europe/Amsterdam"


def test_brevo_sms_without_plus():
    import_file("brevo_import_example_from_brevo_ui.csv")

    jakob = Contact.objects.get(email="ethan@example.com")
    assert jakob.phone == "+4930555501"
    assert jakob.external_id == "456789"


def test_mailchimp_export_headers():
    import_file("mailchimp_subscribed_members_export_RECONSTRUCTED.csv")

    zoe = Contact.objects.get(email="zoe@example.com")
    assert zoe.first_name == "Zoë"
    assert zoe.country_code == "NL"
    assert zoe.attributes["member_rating"] == "4"
    assert zoe.email_consent == ConsentStatus.UNKNOWN


# Bad rows


def test_bad_rows_reported_good_rows_imported():
    report = import_file(BAD_ROWS).report

    assert report.created == 2
    assert report.skipped == 4
    assert set(Contact.objects.values_list("email", flat=True)) == {"good1@example.com", "good3@example.com"}


def test_bad_rows_row_column_value():
    report = import_file(BAD_ROWS).report

    found = [(problem.row, problem.column, problem.value) for problem in report.skipped_problems]
    assert found == [
        (3, "Email", "not-an-email"),
        (4, "Phone", "12"),
        (5, "Email", ""),
        (6, "Email", "good1@example.com"),
    ]


def test_bad_row_reasons_name_fix():
    report = import_file(BAD_ROWS).report

    reasons = {problem.row: problem.reason for problem in report.skipped_problems}
    assert reasons[3].startswith("Not a valid email address")
    assert reasons[4].startswith("Not a valid phone number")
    assert "no email address, phone number or customer id" in reasons[5]
    assert reasons[6] == "Same email address as row 2, so this row was skipped. Merge the two rows into one."


def test_row_numbers_follow_spreadsheet():
    # A spreadsheet shows the two-line note as one row 2, and the blank line as row 3.
    data = b'Email,Note\na@example.com,"line one\nline two"\n\nnot-an-email,x\n'

    report = import_bytes(data).report

    assert report.skipped_problems[0].row == 4


def test_extra_cells_skip_row():
    data = b"Email;Plaats\nkim@example.nl;Den Haag\nbo@example.nl;Den;Haag\n"

    report = import_bytes(data).report

    assert report.created == 1
    assert report.skipped_problems[0].row == 3
    assert report.skipped_problems[0].value == "Haag"


def test_invalid_country_code_left_out():
    data = b"Email,Country Code\nnoor@example.nl,Nederland\n"

    report = import_bytes(data).report

    assert report.created == 1
    assert Contact.objects.get(email="noor@example.nl").country_code == ""
    assert report.value_problems[0].column == "Country Code"


def test_file_without_identity_column():
    result = import_bytes(b"Naam,Plaats\nJan,Utrecht\n")

    assert result.has_errors()
    assert "No column for email, phone or customer id" in str(result.base_errors[0].error)
    assert Contact.objects.count() == 0


def test_empty_file_rejected():
    with pytest.raises(CsvFileError):
        SpreadsheetCSV().create_dataset(b"\xef\xbb\xbf\r\n")


# Matching existing contacts


def test_reimport_updates_with_other_case(bram):
    data = b"Email;Achternaam;Plaats\nBRAM@Example.com;Bakker;Leiden\n"

    report = import_bytes(data).report

    bram.refresh_from_db()
    assert report.updated == 1
    assert report.created == 0
    assert Contact.objects.count() == 1
    assert bram.last_name == "Bakker"
    assert bram.first_name == "Bram"


def test_reimport_same_file_unchanged():
    import_file(PAKISTAN)

    report = import_file(PAKISTAN).report

    assert report.unchanged == 3
    assert Contact.objects.count() == 3
    assert ConsentRecord.objects.count() == 6


def test_reimport_adds_tags_keeps_old(anna):
    anna.tags.add(Tag.objects.create(name="klant"))

    import_bytes(b'Email,Tags\nanna@example.com,"VIP, Klant"\n')

    assert tag_names(anna) == {"klant", "VIP"}


def test_match_on_customer_id(anna):
    Contact.objects.filter(pk=anna.pk).update(external_id="42")

    report = import_bytes(b"Customer ID,First Name\n'42,Anne\n").report

    anna.refresh_from_db()
    assert report.updated == 1
    assert anna.first_name == "Anne"


def test_match_on_phone_without_email():
    contact = Contact.objects.create(phone="+31612345678")

    import_bytes(b"Telefoon;Voornaam\n06 1234 5678;Sanne\n")

    contact.refresh_from_db()
    assert contact.first_name == "Sanne"
    assert Contact.objects.count() == 1


def test_shared_phone_other_email_new_contact(anna):
    Contact.objects.filter(pk=anna.pk).update(phone="+31612345678")

    report = import_bytes(b"Email;Telefoon\nanna.partner@example.com;0612345678\n").report

    partner = Contact.objects.get(email="anna.partner@example.com")
    assert report.created == 1
    assert partner.phone is None
    assert report.value_problems[0].column == "Telefoon"


def test_empty_cell_keeps_value(anna):
    Contact.objects.filter(pk=anna.pk).update(city="Utrecht")

    import_bytes(b"Email,City,First Name\nanna@example.com,,Anne\n")

    anna.refresh_from_db()
    assert anna.city == "Utrecht"
    assert anna.first_name == "Anne"


def test_order_facts_kept_for_existing_contact(anna):
    Contact.objects.filter(pk=anna.pk).update(order_count=2)

    import_bytes(b"Email,Total Orders\nanna@example.com,7\n")

    anna.refresh_from_db()
    assert anna.order_count == 2


def test_shopify_raises_order_facts_existing():
    import_file(PAKISTAN)
    Contact.objects.filter(email="carla.hendriks302@example.com").update(order_count=0, total_spent=Decimal("5"))

    import_file(PAKISTAN)

    carla = Contact.objects.get(email="carla.hendriks302@example.com")
    assert carla.order_count == 1
    assert carla.total_spent == Decimal("1075.00")


# Consent


def test_missing_consent_column_keeps_status(anna):
    import_bytes(b"Email,First Name\nanna@example.com,Anna\n")

    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.SUBSCRIBED
    assert ConsentRecord.objects.count() == 0


def test_unsubscribe_sends_one_signal(anna, bram, t0):
    Contact.objects.filter(pk=bram.pk).update(email_consent=ConsentStatus.SUBSCRIBED)
    calls = []

    def receiver(sender, contact_ids, channel, at, **kwargs):
        calls.append((sorted(contact_ids), channel, at))

    consent_withdrawn.connect(receiver)
    try:
        with time_machine.travel(t0, tick=False):
            import_bytes(b"Email,Accepts Email Marketing\nanna@example.com,no\nbram@example.com,nee\n")
    finally:
        consent_withdrawn.disconnect(receiver)

    assert calls == [(sorted([anna.pk, bram.pk]), Channel.EMAIL, t0)]


def test_unsubscribe_writes_record(anna):
    import_bytes(b"Email,Accepts Email Marketing\nanna@example.com,no\n", "nieuwsbrief.csv")

    record = ConsentRecord.objects.get(contact=anna)
    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.UNSUBSCRIBED
    assert record.status == ConsentStatus.UNSUBSCRIBED
    assert record.proof == "file nieuwsbrief.csv, row 2"


def test_import_never_resubscribes_link_unsubscribe(anna):
    set_consent(anna, Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, source="unsubscribe link")

    report = import_bytes(b"Email,Accepts Email Marketing\nanna@example.com,yes\n").report

    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.UNSUBSCRIBED
    assert report.value_problems[0].column == "Accepts Email Marketing"


def test_import_resubscribes_import_unsubscribe(anna):
    import_bytes(b"Email,Accepts Email Marketing\nanna@example.com,no\n")

    import_bytes(b"Email,Accepts Email Marketing\nanna@example.com,yes\n")

    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.SUBSCRIBED
    assert ConsentRecord.objects.filter(contact=anna).count() == 2


def test_brevo_blacklisted_withdraws_consent(anna):
    import_bytes(b"EMAIL;EMAIL_BLACKLISTED;SMS_BLACKLISTED\nanna@example.com;Yes;No\n")

    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.UNSUBSCRIBED
    assert anna.sms_consent == ConsentStatus.UNKNOWN


# Dry run and the command


def test_dry_run_writes_nothing(anna):
    report = import_file(PAKISTAN, dry_run=True).report

    assert report.created == 3
    assert Contact.objects.count() == 1
    assert ConsentRecord.objects.count() == 0
    assert Tag.objects.count() == 0


def test_dry_run_matches_real_import():
    dry = import_file(BAD_ROWS, dry_run=True).report

    real = import_file(BAD_ROWS).report

    assert dry.created == real.created
    assert dry.updated == real.updated
    assert dry.skipped == real.skipped
    assert dry.problems == real.problems


def test_command_prints_counts_and_bad_rows():
    output = run_command(str(DATA / BAD_ROWS))

    assert "Created: 2, updated: 0, unchanged: 0, skipped: 4." in output
    assert "Row 3, column Email, value 'not-an-email': Not a valid email address" in output
    assert "Row 6, column Email, value 'good1@example.com': Same email address as row 2" in output


def test_command_reports_detected_format():
    output = run_command(str(DATA / DUTCH))

    assert f"Read {DATA / DUTCH} as Windows-1252 with semicolon as delimiter." in output


def test_command_dry_run_saves_nothing():
    output = run_command(str(DATA / DUTCH), "--dry-run")

    assert "Dry run, nothing was saved. The import would create 3, update 0" in output
    assert Contact.objects.count() == 0


def test_command_missing_file_names_path(tmp_path):
    missing = tmp_path / "klanten.csv"

    with pytest.raises(CommandError, match="klanten.csv"):
        run_command(str(missing))


def test_command_no_identity_column(tmp_path):
    path = tmp_path / "bestellingen.csv"
    path.write_bytes(b"Product;Aantal\nFiets;1\n")

    with pytest.raises(CommandError, match="No column for email"):
        run_command(str(path))


# The admin's import path: django-import-export's format and resource classes


def test_admin_format_reads_uploaded_bytes():
    # The admin's confirm step constructs the format with its from_encoding.
    input_format = SpreadsheetCSV(encoding="utf-8-sig")

    dataset = input_format.create_dataset((DATA / DUTCH).read_bytes())

    assert input_format.is_binary()
    assert input_format.get_read_mode() == "rb"
    assert dataset.headers[2] == "Achternaam"


def test_admin_preview_then_confirm(staff_user):
    data = (DATA / BAD_ROWS).read_bytes()
    resource = ContactResource()

    preview = resource.import_data(
        SpreadsheetCSV().create_dataset(data), dry_run=True, raise_errors=False, file_name=BAD_ROWS, user=staff_user
    )
    count_after_preview = Contact.objects.count()
    confirmed = resource.import_data(
        SpreadsheetCSV().create_dataset(data),
        dry_run=False,
        file_name=BAD_ROWS,
        user=staff_user,
        retain_instance_in_row_result=True,
    )

    assert not preview.has_errors()
    assert not preview.has_validation_errors()
    assert count_after_preview == 0
    assert confirmed.totals["new"] == 2
    assert confirmed.totals["skip"] == 4
    assert Contact.objects.count() == 2


def test_admin_preview_rows_show_problems():
    result = import_file(BAD_ROWS, dry_run=True)

    rows = {row.diff[0]: row for row in result.valid_rows()}
    assert result.diff_headers == ["Row", "Contact", "Problems"]
    assert rows["2"].import_type == "new"
    assert rows["3"].import_type == "skip"
    assert "Not a valid email address" in rows["3"].diff[2]


def test_export_imports_unchanged(anna):
    anna.tags.add(Tag.objects.create(name="vip"))
    Contact.objects.filter(pk=anna.pk).update(attributes={"plan": "pro"}, phone="+31612345678")
    exported = ContactResource().export().export("csv")

    report = import_bytes(exported.encode()).report

    assert report.unchanged == 1
    assert report.problems == []


def test_import_leaves_no_cyclic_garbage():
    # The import pauses the garbage collector, which is only harmless when it creates no cycles.
    gc.collect()
    gc.disable()
    try:
        import_file(PAKISTAN)
        import_file(BAD_ROWS, dry_run=True)
        import_file(PAKISTAN)
        garbage = gc.collect()
    finally:
        gc.enable()

    assert garbage == 0
    assert gc.isenabled()


def test_resource_reads_spreadsheet_cells():
    # XLSX and ODS datasets give None for an empty header and numbers for numeric cells.
    dataset = tablib.Dataset(headers=["Email", "Mobiel", None])
    dataset.append(["floor@example.nl", 31612345678.0, 7])

    ContactResource().import_data(dataset, file_name="klanten.xlsx")

    floor = Contact.objects.get(email="floor@example.nl")
    assert floor.phone == "+31612345678"
    assert floor.attributes == {"column_3": "7"}


def test_created_at_uses_injected_clock(t0):
    report = import_contacts(["Email"], [["lies@example.nl"]], file_name="lijst.csv", now=t0 - timedelta(days=1))

    assert report.created == 1
    assert Contact.objects.get(email="lies@example.nl").created_at == t0 - timedelta(days=1)

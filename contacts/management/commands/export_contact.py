"""Write everything held about one contact as JSON, for a data request (GDPR article 15)."""

import json
import logging
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from contacts.identity import IdentityError, normalize_email
from contacts.models import Contact
from contacts.privacy import export_contact, write_private_json

logger = logging.getLogger(__name__)


def find_contact_by_email(raw: str) -> Contact:
    """Return the contact with this email address; raise CommandError naming the address when there is none."""
    try:
        email = normalize_email(raw)
    except IdentityError as error:
        raise CommandError(_("%(email)r is not a valid email address: %(error)s") % {"email": raw, "error": error}) from None
    contact = Contact.objects.filter(email=email).first()
    if contact is None:
        raise CommandError(_("No contact has the email address %(email)s. Check the spelling.") % {"email": email})
    return contact


class Command(BaseCommand):
    help = _("Write everything held about a contact (profile, consent, tags, events, workflows, messages) as JSON.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email", help=_("The contact's email address."))
        parser.add_argument(
            "--output",
            metavar="FILE",
            help=_("Write the export to this file, readable by you only, instead of standard output."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        contact = find_contact_by_email(options["email"])
        data = export_contact(contact)

        output = options.get("output")
        if not output:
            self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2))
            logger.info("export of contact %s written to standard output", contact.pk)
            return

        path = Path(output)
        if not path.parent.is_dir():
            raise CommandError(_("Folder not found: %(folder)s. Create it or choose another file.") % {"folder": path.parent})
        write_private_json(path, data)
        logger.info("export of contact %s written to %s", contact.pk, path)
        self.stdout.write(_("Export of contact %(contact)s written to %(path)s.") % {"contact": contact.pk, "path": path})

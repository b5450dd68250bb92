"""Erase one contact's personal data (GDPR article 17), keeping anonymised counts and metrics."""

import logging
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from contacts.management.commands.export_contact import find_contact_by_email
from contacts.privacy import erase_contact

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = _(
        "Erase a contact's personal data: email, phone, name, address, attributes, tags and personal event details. "
        "Counts and metrics stay. This cannot be undone."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email", help=_("The contact's email address."))
        parser.add_argument("--yes", action="store_true", help=_("Erase without asking for confirmation."))

    def handle(self, *args: Any, **options: Any) -> None:
        contact = find_contact_by_email(options["email"])
        label = str(contact)

        if not options["yes"]:
            question = _(
                "Erase the personal data of contact %(contact)s (%(email)s)? This cannot be undone. Type yes to go on: "
            ) % {
                "contact": contact.pk,
                "email": label,
            }
            try:
                answer = input(question)
            except EOFError:
                answer = ""
            if answer.strip().lower() not in {"yes", _("yes")}:
                raise CommandError(_("Nothing erased. Run the command again and type yes, or pass --yes."))

        erasure = erase_contact(contact)
        logger.info("contact %s erased from the command line", contact.pk)
        self.stdout.write(
            _(
                "Contact %(contact)s erased. Rows anonymised: events %(events)s, enrollments %(enrollments)s, messages %(deliveries)s."
            )
            % {
                "contact": contact.pk,
                "events": erasure.events,
                "enrollments": erasure.enrollments,
                "deliveries": erasure.deliveries,
            }
        )

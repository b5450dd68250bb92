"""Print one contact's journey through the workflows, with the reason for every message not sent."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from contacts.models import Contact
from workflows.explain import journey_text


class Command(BaseCommand):
    help = gettext_lazy(
        "Print a contact's journey: enrollments, each step with its time, and every message sent, skipped, "
        "deferred or cancelled with its reason."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email", help=gettext_lazy("The contact's email address, e.g. anna@example.com."))

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip().lower()
        contact = Contact.objects.filter(email=email).first()
        if contact is None:
            raise CommandError(
                _("No contact has the email address %(email)r. Check the spelling, or search the contacts in the admin.")
                % {"email": options["email"]}
            )
        self.stdout.write(journey_text(contact))

"""Create an API key for the events API and print its raw value, which is shown only this once."""

import logging
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from contacts.models import ApiKey

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = _("Create an API key for POST /api/events and print it once. Only a hash is stored, so copy the key now.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help=_("A name for who uses the key, e.g. 'Shopify pixel'."))
        parser.add_argument(
            "--scope",
            choices=ApiKey.Scope.values,
            default=ApiKey.Scope.FULL,
            help=_("full: every event type and contact details; pixel: browsing events only (default: full)."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError(_("The key needs a name, e.g. create_api_key 'Shopify pixel'."))
        max_length = ApiKey._meta.get_field("name").max_length
        if len(name) > max_length:
            raise CommandError(
                _("The name %(name)r is longer than %(max)s characters; choose a shorter one.")
                % {"name": name, "max": max_length}
            )

        api_key, raw_key = ApiKey.generate(name, scope=options["scope"])
        logger.info("API key %s (%s, scope %s) created", api_key.pk, api_key.prefix, api_key.scope)
        self.stderr.write(
            _("Created API key %(name)r with scope %(scope)s. Store it now: it is not shown again.")
            % {"name": name, "scope": api_key.scope}
        )
        # The raw key alone on standard output, so a script can capture it.
        self.stdout.write(raw_key)

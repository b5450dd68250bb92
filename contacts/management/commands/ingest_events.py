import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from contacts.ingest import EventError, parse_event, store_events
from contacts.models import Event

CHUNK = 1000


class Command(BaseCommand):
    help = "Store events from a JSON Lines file (one event per line) for the engine to process."

    def add_arguments(self, parser):
        parser.add_argument("path", help="A .jsonl file; - reads standard input.")
        parser.add_argument(
            "--source",
            default=Event.Source.API,
            choices=Event.Source.values,
            help="Source the ids are unique within (default: api).",
        )

    def handle(self, *args, **options):
        path = options["path"]
        if path != "-" and not Path(path).is_file():
            raise CommandError(_("File not found: %(path)s") % {"path": path})

        stored = duplicates = bad = 0
        pending = []
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8-sig")  # noqa: SIM115 - closed below
        try:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as error:
                    bad += 1
                    self.stderr.write(_("Line %(line)s: invalid JSON: %(error)s") % {"line": number, "error": error})
                    continue
                try:
                    pending.append(parse_event(data))
                except EventError as error:
                    bad += 1
                    self.stderr.write(
                        _("Line %(line)s: field %(field)s: %(message)s")
                        % {"line": number, "field": error.field, "message": error.message}
                    )
                    continue
                if len(pending) >= CHUNK:
                    result = store_events(pending, options["source"])
                    stored, duplicates, pending = stored + len(result.created), duplicates + result.duplicates, []
            if pending:
                result = store_events(pending, options["source"])
                stored, duplicates = stored + len(result.created), duplicates + result.duplicates
        finally:
            if stream is not sys.stdin:
                stream.close()

        self.stdout.write(
            _("%(stored)s events stored, %(duplicates)s duplicates ignored, %(bad)s invalid lines.")
            % {"stored": stored, "duplicates": duplicates, "bad": bad}
        )

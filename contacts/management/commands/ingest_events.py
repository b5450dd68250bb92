"""Store events from a JSON Lines file for the engine to process; invalid lines are reported and skipped."""

import logging
import sys
from argparse import ArgumentParser
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from contacts.ingest import EventError, ParsedEvent, decode_json, parse_event, store_events
from contacts.models import Event
from contacts.shopify.payload import PayloadError
from contacts.shopify.topics import HANDLERS, process_saved_body

logger = logging.getLogger(__name__)

# Events stored per transaction: a crash loses no more than the chunk in flight, and a rerun
# skips what was stored because ids are deduplicated.
CHUNK = 1000


def counts_text(stored: int, duplicates: int, invalid: int | None = None) -> str:
    """Return the summary line, e.g. "1 event stored, 2 duplicates skipped, 0 invalid lines."."""
    parts = [
        ngettext("%(count)s event stored", "%(count)s events stored", stored) % {"count": stored},
        ngettext("%(count)s duplicate skipped", "%(count)s duplicates skipped", duplicates) % {"count": duplicates},
    ]
    if invalid is not None:
        parts.append(ngettext("%(count)s invalid line", "%(count)s invalid lines", invalid) % {"count": invalid})
    return ", ".join(parts) + "."


class Command(BaseCommand):
    help = _("Store events from a JSON Lines file (one event per line) for the engine to process.")
    # call_command("ingest_events", "-", stdin=...) passes a stream in tests.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", help=_("A .jsonl file; - reads standard input."))
        parser.add_argument(
            "--source",
            default=Event.Source.API,
            choices=Event.Source.values,
            help=_("The source whose ids the file's ids are unique within (default: api)."),
        )
        parser.add_argument(
            "--shopify-topic",
            metavar="TOPIC",
            choices=sorted(HANDLERS),
            help=_(
                "Read PATH as one saved Shopify webhook body (JSON) of this topic, e.g. orders/create, and map it as the "
                "webhook endpoint does. No signature is checked, and --source is not used."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"]
        source = options["source"]
        if path != "-" and not Path(path).is_file():
            raise CommandError(
                _("File not found: %(path)s. Give the path of a .jsonl file, or - for standard input.") % {"path": path}
            )
        if options.get("shopify_topic"):
            self.ingest_shopify_body(path, options["shopify_topic"], options.get("stdin"))
            return

        stored = duplicates = invalid = 0
        pending: list[ParsedEvent] = []
        with self.open_lines(path, options.get("stdin")) as lines:
            for number, line in numbered_lines(lines):
                if not line.strip():
                    continue
                try:
                    data = decode_json(line)
                except EventError as error:
                    invalid += 1
                    self.stderr.write(_("Line %(line)s: %(message)s") % {"line": number, "message": error.message})
                    continue
                try:
                    pending.append(parse_event(data))
                except EventError as error:
                    invalid += 1
                    for field, message in error.problems:
                        self.stderr.write(
                            _("Line %(line)s: %(field)s: %(message)s") % {"line": number, "field": field, "message": message}
                        )
                    continue
                if len(pending) >= CHUNK:
                    result = store_events(pending, source)
                    stored, duplicates, pending = stored + len(result.created), duplicates + result.duplicates, []
            if pending:
                result = store_events(pending, source)
                stored, duplicates = stored + len(result.created), duplicates + result.duplicates

        logger.info("ingest_events %s: %s stored, %s duplicates, %s invalid lines", path, stored, duplicates, invalid)
        self.stdout.write(counts_text(stored, duplicates, invalid))
        if invalid:
            raise CommandError(
                ngettext(
                    "%(invalid)s line was not stored. Fix it and run the command again; stored events are skipped then.",
                    "%(invalid)s lines were not stored. Fix them and run the command again; stored events are skipped then.",
                    invalid,
                )
                % {"invalid": invalid}
            )

    def ingest_shopify_body(self, path: str, topic: str, stdin: Any) -> None:
        """Map one saved webhook body through the same topic handlers as the endpoint."""
        with self.open_lines(path, stdin) as stream:
            body = stream.read()
        if isinstance(body, str):
            body = body.encode()
        try:
            outcome = process_saved_body(body, topic)
        except PayloadError as error:
            raise CommandError(
                _(
                    "%(path)s is not a valid %(topic)s webhook body: %(field)s: %(message)s. Save the body exactly as Shopify sent it."
                )
                % {"path": path, "topic": topic, "field": error.field, "message": error.message}
            ) from None

        logger.info("ingest_events %s as Shopify %s: %s", path, topic, outcome.detail)
        self.stdout.write(counts_text(outcome.stored, outcome.duplicates))

    def open_lines(self, path: str, stdin: Any) -> Any:
        if path != "-":
            return open(path, "rb")  # noqa: SIM115 - the caller closes it with "with"
        stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", sys.stdin)
        return KeepOpen(stream)


class KeepOpen:
    """Use standard input in a with-block without closing it."""

    def __init__(self, stream: Iterable) -> None:
        self.stream = stream

    def __enter__(self) -> Iterable:
        return self.stream

    def __exit__(self, *exc_info: object) -> None:
        return None


def numbered_lines(lines: Iterable[str | bytes]) -> Iterator[tuple[int, str | bytes]]:
    """Yield (line number, line). Bytes stay undecoded: decode_json reads them as UTF-8 and reports a bad byte as malformed JSON."""
    for number, line in enumerate(lines, start=1):
        if number == 1 and isinstance(line, str):
            # json.loads accepts a byte order mark in bytes but not in text.
            line = line.removeprefix("\ufeff")
        yield number, line

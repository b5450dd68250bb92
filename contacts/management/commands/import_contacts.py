from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from contacts.csv_formats import CsvFileError
from contacts.import_columns import RowProblem
from contacts.importing import SpreadsheetCSV
from contacts.resources import ContactResource

ENCODING_NAMES = {
    "utf-8": gettext_lazy("UTF-8"),
    "utf-8-sig": gettext_lazy("UTF-8 with byte order mark"),
    "utf-16": gettext_lazy("UTF-16"),
    "cp1252": gettext_lazy("Windows-1252"),
    "latin-1": gettext_lazy("Latin-1"),
}
DELIMITER_NAMES = {
    ",": gettext_lazy("comma"),
    ";": gettext_lazy("semicolon"),
    "\t": gettext_lazy("tab"),
    "|": gettext_lazy("vertical bar"),
}


class Command(BaseCommand):
    help = _(
        "Import contacts from a CSV file: a Shopify, Mailchimp or Brevo export, or a spreadsheet saved as CSV. "
        "Bad rows are reported and skipped; every other row is imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help=_("The CSV file to import."))
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Report what the import would do without saving anything."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        dry_run = options["dry_run"]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CommandError(_("File not found: %(path)s. Check the path.") % {"path": path}) from None
        except OSError as error:
            raise CommandError(_("Cannot read %(path)s: %(error)s.") % {"path": path, "error": error.strerror}) from None

        try:
            dataset = SpreadsheetCSV().create_dataset(data)
        except CsvFileError as error:
            raise CommandError(_("Cannot read %(path)s as CSV: %(error)s") % {"path": path, "error": error}) from None

        result = ContactResource().import_data(dataset, dry_run=dry_run, file_name=path.name)
        if result.has_errors():
            error = result.base_errors[0].error
            raise CommandError(_("Cannot import %(path)s: %(error)s") % {"path": path, "error": error})

        layout = dataset.csv_layout
        self.stdout.write(
            _("Read %(path)s as %(encoding)s with %(delimiter)s as delimiter.")
            % {
                "path": path,
                "encoding": ENCODING_NAMES.get(layout.encoding, layout.encoding),
                "delimiter": DELIMITER_NAMES.get(layout.delimiter, repr(layout.delimiter)),
            }
        )
        report = result.report
        counts = {
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "skipped": report.skipped,
        }
        if dry_run:
            self.stdout.write(
                _(
                    "Dry run, nothing was saved. The import would create %(created)s, update %(updated)s, "
                    "leave %(unchanged)s unchanged and skip %(skipped)s rows."
                )
                % counts
            )
        else:
            self.stdout.write(
                _("Created: %(created)s, updated: %(updated)s, unchanged: %(unchanged)s, skipped: %(skipped)s.") % counts
            )

        if report.skipped_problems:
            self.stdout.write(_("Skipped rows:"))
            for problem in report.skipped_problems:
                self.stdout.write(describe_problem(problem))
        if report.value_problems:
            self.stdout.write(_("Values not imported (the rest of the row was imported):"))
            for problem in report.value_problems:
                self.stdout.write(describe_problem(problem))


def describe_problem(problem: RowProblem) -> str:
    if problem.column:
        return _("  Row %(row)s, column %(column)s, value %(value)s: %(reason)s") % {
            "row": problem.row,
            "column": problem.column,
            "value": repr(problem.value),
            "reason": problem.reason,
        }
    return _("  Row %(row)s, value %(value)s: %(reason)s") % {
        "row": problem.row,
        "value": repr(problem.value),
        "reason": problem.reason,
    }

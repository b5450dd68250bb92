"""The django-import-export resource for contacts, used by the admin and the import_contacts command.

Exports use the ModelResource machinery unchanged. Imports keep django-import-export's formats,
admin pages (upload, preview, confirm) and Result objects, but ``import_data`` hands the rows to
``contacts.importing.import_contacts`` instead of the row-by-row workflow (instance loader,
widgets, ``save()`` per row, a savepoint and an HTML diff per row). That workflow runs queries
for every row and cannot match on three identities or write consent records in bulk. The
set-based import is more than ten times faster; bench/README.md has the measurements.
"""

import logging
from typing import Any

import tablib
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets
from import_export.results import Result, RowResult

from contacts.import_columns import ImportFileError
from contacts.importing import ImportReport, import_contacts
from contacts.models import Contact, Tag

logger = logging.getLogger(__name__)

IMPORT_TYPES = {
    ImportReport.CREATED: RowResult.IMPORT_TYPE_NEW,
    ImportReport.UPDATED: RowResult.IMPORT_TYPE_UPDATE,
    ImportReport.UNCHANGED: RowResult.IMPORT_TYPE_SKIP,
    ImportReport.SKIPPED: RowResult.IMPORT_TYPE_SKIP,
}


class ContactImportResult(Result):
    """A django-import-export Result that also carries the import's ImportReport."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report: ImportReport | None = None


class ContactResource(resources.ModelResource):
    """Contacts for django-import-export; read the module docstring for how imports run."""

    # Tag names, comma-separated, so an export imports again.
    tags = fields.Field(attribute="tags", column_name="tags", widget=widgets.ManyToManyWidget(Tag, field="name", separator=","))

    class Meta:
        model = Contact
        fields = (
            "email",
            "phone",
            "external_id",
            "first_name",
            "last_name",
            "company",
            "address1",
            "address2",
            "city",
            "zip",
            "province_code",
            "country_code",
            "language",
            "time_zone",
            "note",
            "email_consent",
            "sms_consent",
            "whatsapp_consent",
            "tags",
            "attributes",
            "order_count",
            "total_spent",
        )
        export_order = fields
        import_id_fields = ("email",)

    def get_result_class(self) -> type[ContactImportResult]:
        return ContactImportResult

    def import_data(
        self,
        dataset: tablib.Dataset,
        dry_run: bool = False,
        raise_errors: bool = False,
        use_transactions: bool | None = None,
        collect_failed_rows: bool = False,
        rollback_on_validation_errors: bool = False,
        **kwargs: Any,
    ) -> ContactImportResult:
        """Import the dataset through the set-based import and return a Result for the admin.

        The import always runs in one transaction and a dry run writes nothing, so
        ``use_transactions``, ``collect_failed_rows`` and ``rollback_on_validation_errors`` have
        no effect. Bad rows are skipped rows with the reason in the preview's last column, not
        validation errors, because those would block the admin's confirm step for the good rows.
        A file without an identity column, or a database error, is a base error of the result,
        or raised when ``raise_errors`` is set.
        """
        result = self.get_result_class()()
        result.diff_headers = [str(_("Row")), str(_("Contact")), str(_("Problems"))]
        layout = getattr(dataset, "csv_layout", None)

        try:
            report = import_contacts(
                dataset.headers or [],
                dataset,
                file_name=kwargs.get("file_name") or "",
                dry_run=dry_run,
                header_width=layout.header_width if layout is not None else None,
            )
        except ImportFileError as error:
            self.handle_import_error(result, error, raise_errors)
            return result
        except Exception as error:
            logger.exception("import of %s failed", kwargs.get("file_name"))
            self.handle_import_error(result, error, raise_errors)
            return result

        result.report = report
        fill_result(result, report)
        return result


def fill_result(result: ContactImportResult, report: ImportReport) -> None:
    """Copy the report's counts and preview rows into the Result the admin renders."""
    result.total_rows = report.total
    result.totals[RowResult.IMPORT_TYPE_NEW] = report.created
    result.totals[RowResult.IMPORT_TYPE_UPDATE] = report.updated
    result.totals[RowResult.IMPORT_TYPE_SKIP] = report.unchanged + report.skipped

    problems_by_row: dict[int, list[str]] = {}
    for problem in report.problems:
        text = f"{problem.column}: {problem.value!r}: {problem.reason}" if problem.column else problem.reason
        problems_by_row.setdefault(problem.row, []).append(text)

    for outcome in report.outcomes:
        row_result = RowResult()
        row_result.import_type = IMPORT_TYPES[outcome.action]
        row_result.diff = [str(outcome.row), outcome.label, " ".join(problems_by_row.get(outcome.row, []))]
        if outcome.contact_id is not None:
            row_result.object_id = outcome.contact_id
            row_result.object_repr = outcome.label
        result.append_row_result(row_result)

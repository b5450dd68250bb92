from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from workflows import reporting
from workflows.models import Workflow


class Command(BaseCommand):
    help = _("Print per-step results (entered, sent, opened, clicked, converted, revenue) of one or all workflows.")

    def add_arguments(self, parser):
        parser.add_argument(
            "name", nargs="?", help=_("Workflow name; all workflows that are not archived when left out.")
        )
        parser.add_argument(
            "--format", choices=sorted(reporting.FORMATTERS), default="table", help=_("Output format (default table).")
        )

    def handle(self, *args, **options):
        name = options["name"]
        if name and not Workflow.objects.filter(name=name).exists():
            names = ", ".join(Workflow.objects.values_list("name", flat=True)) or "-"
            raise CommandError(_("No workflow named %(name)r. Existing workflows: %(names)s") % {"name": name, "names": names})
        self.stdout.write(reporting.FORMATTERS[options["format"]](reporting.build_report(name)))

import logging

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from workflows import demo, reporting


class Command(BaseCommand):
    help = _(
        "Run the demo: import the demo contacts, replay 30 days of shop events through the engine, print the results."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30, help=_("Number of virtual days to replay (default 30)."))
        parser.add_argument(
            "--language", default="nl", choices=["nl", "en"], help=_("Language of the installed workflow content.")
        )

    def handle(self, *args, **options):
        if options["verbosity"] < 2:
            # Hundreds of virtual ticks would bury the report in per-batch INFO lines; -v 2 shows them.
            for name in ("contacts", "campaigns", "workflows"):
                logging.getLogger(name).setLevel(logging.WARNING)

        workflows = demo.demo_workflows(options["language"])
        demo.reset(workflows)

        self.stdout.write(_("Importing the demo contacts from %(path)s") % {"path": demo.CONTACTS_FILE})
        call_command("import_contacts", str(demo.CONTACTS_FILE), stdout=self.stdout, stderr=self.stderr)

        self.stdout.write(_("Replaying %(days)s days of shop events on a virtual clock...") % {"days": options["days"]})
        demo.replay(days=options["days"], progress=lambda day: self.stdout.write(f"  {day}"))

        self.stdout.write("")
        reports = [reporting.workflow_report(workflow) for workflow in workflows]
        self.stdout.write(reporting.as_table(reports))
        self.stdout.write(_("Emails written to var/mail. Open the admin with 'make run' to explore the results."))

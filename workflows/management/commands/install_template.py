from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from workflows.library import TEMPLATES, TemplateNotFound, install_template


class Command(BaseCommand):
    help = _("Install a workflow from the template library as a draft.")

    def add_arguments(self, parser):
        parser.add_argument("name", help=_("Template name: {names}.").format(names=", ".join(sorted(TEMPLATES))))
        parser.add_argument(
            "--language", default="nl", choices=["nl", "en"], help=_("Language of the content (default nl).")
        )
        parser.add_argument("--workflow-name", help=_("Name of the new workflow; the template's name when left out."))

    def handle(self, *args, **options):
        try:
            workflow = install_template(options["name"], language=options["language"], name=options["workflow_name"])
        except TemplateNotFound:
            raise CommandError(
                _("Unknown template %(name)r. Choose one of: %(names)s.")
                % {"name": options["name"], "names": ", ".join(sorted(TEMPLATES))}
            ) from None
        self.stdout.write(
            _("Installed %(template)s as draft workflow %(name)r (id %(id)s) with %(steps)s steps. Activate it in the admin.")
            % {"template": options["name"], "name": workflow.name, "id": workflow.pk, "steps": workflow.steps.count()}
        )

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from campaigns.models import validate_sender
from workflows.library import TEMPLATES, TemplateNotFound, install_template
from workflows.models import discount_code_validator


class Command(BaseCommand):
    help = _("Install a workflow from the template library as a draft.")

    def add_arguments(self, parser):
        parser.add_argument("name", help=_("Template name: {names}.").format(names=", ".join(sorted(TEMPLATES))))
        parser.add_argument("--language", default="nl", choices=["nl", "en"], help=_("Language of the content (default nl)."))
        parser.add_argument("--workflow-name", help=_("Name of the new workflow; the template's name when left out."))
        parser.add_argument(
            "--discount-code", help=_("The discount code the messages offer; the template's suggested code when left out.")
        )
        parser.add_argument("--from-email", default="", help=_("Sender of the emails, e.g. 'Shop <shop@example.com>'."))

    def handle(self, *args, **options):
        code = options["discount_code"]
        checks = [(discount_code_validator, (code or "").strip()), (validate_sender, options["from_email"])]
        for validator, value in checks:
            if not value:
                continue
            try:
                validator(value)
            except ValidationError as error:
                raise CommandError(" ".join(error.messages)) from None

        spec = TEMPLATES.get(options["name"])
        if code and spec is not None and not spec.discount_code:
            self.stderr.write(
                _("%(template)s offers no discount code, so --discount-code is ignored.") % {"template": options["name"]}
            )

        try:
            workflow = install_template(
                options["name"],
                language=options["language"],
                name=options["workflow_name"],
                discount_code=options["discount_code"],
                from_email=options["from_email"],
            )
        except TemplateNotFound:
            raise CommandError(
                _("Unknown template %(name)r. Choose one of: %(names)s.")
                % {"name": options["name"], "names": ", ".join(sorted(TEMPLATES))}
            ) from None
        self.stdout.write(
            _("Installed %(template)s as draft workflow %(name)r (id %(id)s) with %(steps)s steps. Activate it in the admin.")
            % {"template": options["name"], "name": workflow.name, "id": workflow.pk, "steps": workflow.steps.count()}
        )
        if workflow.discount_code:
            self.stdout.write(
                _("The messages offer the discount code %(code)s. Create it in the shop before you activate the workflow.")
                % {"code": workflow.discount_code}
            )

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from contacts.models import Contact
from workflows import demo
from workflows.library import install_template
from workflows.models import Workflow

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-mktauto"


class Command(BaseCommand):
    help = _(
        "Prepare a local installation: the demo admin login, the demo contacts and the two starter workflows (as drafts)."
    )

    def handle(self, *args, **options):
        user_model = get_user_model()
        if not user_model.objects.filter(username=DEMO_USERNAME).exists():
            user_model.objects.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)
            self.stdout.write(
                _("Created the admin login %(user)s / %(password)s.") % {"user": DEMO_USERNAME, "password": DEMO_PASSWORD}
            )

        if not Contact.objects.exists():
            call_command("import_contacts", str(demo.CONTACTS_FILE), stdout=self.stdout, stderr=self.stderr)

        for slug in demo.DEMO_TEMPLATES:
            if not Workflow.objects.filter(template_slug=slug).exists():
                workflow = install_template(slug)
                self.stdout.write(_("Installed the workflow %(name)s as a draft.") % {"name": workflow.name})

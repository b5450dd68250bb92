from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from workflows.engine.tick import tick


class Command(BaseCommand):
    help = _("Run one engine tick: process pending events, advance due enrollments, send due messages.")

    def add_arguments(self, parser):
        parser.add_argument("--now", help=_("Run as if the time were this ISO 8601 date-time, e.g. 2026-03-01T09:00:00+01:00."))
        parser.add_argument("--no-dispatch", action="store_true", help=_("Queue messages but do not send them."))

    def handle(self, *args, **options):
        now = timezone.now()
        if options["now"]:
            now = parse_datetime(options["now"])
            if now is None:
                raise CommandError(
                    _("Invalid --now value %(value)r: use ISO 8601, e.g. 2026-03-01T09:00:00+01:00.") % {"value": options["now"]}
                )
            if timezone.is_naive(now):
                now = timezone.make_aware(now, timezone.get_default_timezone())

        result = tick(now, dispatch=not options["no_dispatch"])
        parts = [
            ngettext("%(count)s event processed", "%(count)s events processed", result.events),
            ngettext(
                "%(count)s contact enrolled by scheduled triggers",
                "%(count)s contacts enrolled by scheduled triggers",
                result.triggered,
            ),
            ngettext("%(count)s enrollment advanced", "%(count)s enrollments advanced", result.advanced),
            ngettext("%(count)s message handled", "%(count)s messages handled", result.dispatched),
        ]
        counts = [result.events, result.triggered, result.advanced, result.dispatched]
        summary = ", ".join(part % {"count": count} for part, count in zip(parts, counts, strict=True))
        self.stdout.write(_("Tick at %(now)s: %(summary)s.") % {"now": now.isoformat(), "summary": summary})

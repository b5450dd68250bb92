"""The django-q2 schedule that runs the engine's tick every minute."""

from django_q.models import Schedule

TICK_SCHEDULE_NAME = "mktauto tick"
TICK_FUNCTION = "workflows.tasks.run_tick"


def ensure_tick_schedule(**kwargs) -> None:
    """Create the every-minute tick schedule once; a later migrate leaves staff's edits alone."""
    Schedule.objects.get_or_create(
        name=TICK_SCHEDULE_NAME,
        defaults={"func": TICK_FUNCTION, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
    )

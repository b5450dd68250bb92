"""The django-q2 schedules: the engine's tick every minute, lead score decay once a day."""

from django_q.models import Schedule

TICK_SCHEDULE_NAME = "mktauto tick"
TICK_FUNCTION = "workflows.tasks.run_tick"
DECAY_SCHEDULE_NAME = "mktauto lead score decay"
DECAY_FUNCTION = "workflows.tasks.run_score_decay"


def ensure_tick_schedule(**kwargs) -> None:
    """Create the every-minute tick and the daily score decay schedules once; a later migrate leaves staff's edits alone."""
    Schedule.objects.get_or_create(
        name=TICK_SCHEDULE_NAME,
        defaults={"func": TICK_FUNCTION, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
    )
    # Daily; it does nothing while MKTAUTO_SCORE_DECAY_POINTS is 0.
    Schedule.objects.get_or_create(
        name=DECAY_SCHEDULE_NAME, defaults={"func": DECAY_FUNCTION, "schedule_type": Schedule.DAILY, "repeats": -1}
    )

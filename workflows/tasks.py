"""django-q2 task entry points; each calls one engine function."""

from django.conf import settings
from django.utils import timezone

from contacts.scoring import decay_scores
from workflows.engine.tick import tick


def run_tick() -> str:
    result = tick()
    return f"events={result.events} triggered={result.triggered} advanced={result.advanced} dispatched={result.dispatched}"


def run_score_decay() -> str:
    decayed = decay_scores(
        timezone.now(), points=settings.MKTAUTO_SCORE_DECAY_POINTS, idle_days=settings.MKTAUTO_SCORE_DECAY_IDLE_DAYS
    )
    return f"decayed={decayed}"

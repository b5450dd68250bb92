"""django-q2 task entry points; each calls one engine function."""

from workflows.engine.tick import tick


def run_tick() -> str:
    result = tick()
    return f"events={result.events} triggered={result.triggered} advanced={result.advanced} dispatched={result.dispatched}"

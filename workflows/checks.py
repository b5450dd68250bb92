"""System checks for settings the engine relies on."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_cluster_settings(app_configs, **kwargs) -> list[Error]:
    """Reject a django-q2 set-up that could run a task twice at once or replay missed ticks."""
    cluster = getattr(settings, "Q_CLUSTER", {})
    errors = []
    # With retry <= timeout the broker hands a still-running tick to a second worker.
    if cluster.get("retry", 60) <= cluster.get("timeout", 0):
        errors.append(
            Error(
                f"Q_CLUSTER retry ({cluster.get('retry')}) must be larger than timeout ({cluster.get('timeout')}).",
                hint="Set MKTAUTO_Q_RETRY above MKTAUTO_Q_TIMEOUT.",
                id="mktauto.E001",
            )
        )
    if cluster.get("catch_up", True):
        errors.append(
            Error(
                "Q_CLUSTER catch_up must be False, or an outage replays every missed tick at once.",
                hint="Set 'catch_up': False in Q_CLUSTER.",
                id="mktauto.E002",
            )
        )
    return errors


@register()
def check_public_address(app_configs, **kwargs) -> list[Warning]:
    """Warn when a production set-up sends unsubscribe links that mail clients will not one-click."""
    if settings.DEBUG or settings.MKTAUTO_BASE_URL.startswith("https://"):
        return []
    # RFC 8058 one-click unsubscribe requires an https URI in List-Unsubscribe.
    return [
        Warning(
            f"MKTAUTO_BASE_URL is {settings.MKTAUTO_BASE_URL!r}; one-click unsubscribe (RFC 8058) needs an https address.",
            hint="Set MKTAUTO_BASE_URL to the public https address of this installation.",
            id="mktauto.W001",
        )
    ]

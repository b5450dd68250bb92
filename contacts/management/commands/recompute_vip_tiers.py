"""Recompute every contact's VIP tier, e.g. after staff changed a tier's thresholds."""

import logging
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts import vip
from contacts.models import VipTier

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = _(
        "Put every contact in the best VIP tier whose spend or order threshold it meets. A rise records a "
        "vip_tier_reached event, which starts the workflows triggered by it; a drop records nothing."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not VipTier.objects.exists():
            self.stdout.write(_("There are no VIP tiers, so every contact is taken out of its tier. Add tiers in the admin."))

        changes = vip.recompute_all(timezone.now())
        logger.info("VIP tiers recomputed from the command line: %s rose, %s dropped", changes.risen, changes.lowered)
        self.stdout.write(
            _(
                "VIP tiers recomputed. Contacts that rose to a higher tier: %(risen)d. Contacts that dropped to a lower "
                "tier or out of the tiers: %(lowered)d."
            )
            % {"risen": changes.risen, "lowered": changes.lowered}
        )

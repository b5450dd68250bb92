from decimal import Decimal

from django.db import migrations
from django.db.models import Q
from django.utils import timezone

# The tiers a new installation starts with; a copy, because migrations must not import app code
# that may change later. The names are data in English whatever LANGUAGE_CODE is: conditions,
# segments and vip_tier_reached events match on them, and a name taken from the language active
# while migrating would differ between installations. Staff rename them in the admin.
DEFAULT_TIERS = [
    ("Silver", 1, Decimal("500"), 5),
    ("Gold", 2, Decimal("1000"), 10),
]


def create_tiers(apps, schema_editor):
    VipTier = apps.get_model("contacts", "VipTier")
    Contact = apps.get_model("contacts", "Contact")
    if VipTier.objects.exists():
        return
    VipTier.objects.bulk_create(
        [
            VipTier(name=name, rank=rank, min_total_spent=min_total_spent, min_order_count=min_order_count)
            for name, rank, min_total_spent, min_order_count in DEFAULT_TIERS
        ]
    )

    # Contacts who already meet a threshold get their tier without a vip_tier_reached event, so an
    # upgrade does not start the VIP workflow for every existing customer at once. When they became
    # VIP is unknown; the upgrade's time stands in for it.
    now = timezone.now()
    for tier in VipTier.objects.order_by("-rank"):
        qualifies = Q(total_spent__gte=tier.min_total_spent) | Q(order_count__gte=tier.min_order_count)
        Contact.objects.filter(qualifies, vip_tier__isnull=True).update(vip_tier=tier, vip_since=now)


class Migration(migrations.Migration):
    dependencies = [("contacts", "0006_vip_tiers")]

    operations = [migrations.RunPython(create_tiers, migrations.RunPython.noop)]

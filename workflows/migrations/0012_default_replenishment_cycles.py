from django.db import migrations

# The cycles a new installation starts with; a copy of workflows.replenishment.DEFAULT_CYCLES,
# because migrations must not import app code that may change later. The names are stored in
# English whatever LANGUAGE_CODE is and shown through gettext, so the admin shows them in each
# staff member's language and product_discontinued events carry the same name everywhere. The
# title words cover English and Dutch product titles; staff add SKUs or product ids to be exact.
DEFAULT_CYCLES = [
    ("30-day supplement", "supplement", 30),
    ("Coffee 1 lb", "coffee, koffie", 19),
    ("Skincare 60 ml", "skincare, huidverzorging", 47),
    ("Pet food 15 lb", "pet food, dierenvoer", 35),
    ("Razor blades 8-pack", "razor blade, scheermesje", 60),
]


def create_cycles(apps, schema_editor):
    ReplenishmentCycle = apps.get_model("workflows", "ReplenishmentCycle")
    if ReplenishmentCycle.objects.exists():
        return
    ReplenishmentCycle.objects.bulk_create(
        [
            ReplenishmentCycle(name=name, title_contains=title_contains, cycle_days=cycle_days)
            for name, title_contains, cycle_days in DEFAULT_CYCLES
        ]
    )


class Migration(migrations.Migration):
    dependencies = [("workflows", "0011_replenishment_cycles")]

    operations = [migrations.RunPython(create_cycles, migrations.RunPython.noop)]

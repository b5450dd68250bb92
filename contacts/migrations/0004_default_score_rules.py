from django.db import migrations

# The rules a new installation starts with; a copy, because migrations must not import app code
# that may change later.
DEFAULT_RULES = [
    ("Email opened", "email_opened", {}, 1),
    ("Link clicked", "link_clicked", {}, 3),
    ("Content downloaded", "content_downloaded", {}, 10),
    ("Pricing page visited", "page_viewed", {"property": "url", "op": "contains", "value": "/pricing"}, 15),
    ("Demo requested", "demo_requested", {}, 25),
]


def create_rules(apps, schema_editor):
    ScoreRule = apps.get_model("contacts", "ScoreRule")
    if ScoreRule.objects.exists():
        return
    ScoreRule.objects.bulk_create(
        [
            ScoreRule(name=name, event_type=event_type, event_filter=event_filter, points=points)
            for name, event_type, event_filter, points in DEFAULT_RULES
        ]
    )


class Migration(migrations.Migration):
    dependencies = [("contacts", "0003_score_rules")]

    operations = [migrations.RunPython(create_rules, migrations.RunPython.noop)]

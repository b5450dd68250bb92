"""Adding and removing one tag for many contacts at once, as workflow steps and exits do."""

import logging

from contacts.models import Contact, Tag

logger = logging.getLogger(__name__)

CHUNK = 5000


def tag_contacts(contact_ids: list[int], name: str) -> Tag:
    """Give every contact in ``contact_ids`` the tag ``name``, creating the tag when it is new."""
    tag, _created = Tag.objects.get_or_create(name=name.strip())
    through = Contact.tags.through
    through.objects.bulk_create(
        [through(contact_id=contact_id, tag_id=tag.pk) for contact_id in sorted(set(contact_ids))],
        batch_size=CHUNK,
        ignore_conflicts=True,
    )
    logger.info("tag %s added to %s contacts", tag.pk, len(set(contact_ids)))
    return tag


def untag_contacts(contact_ids: list[int], name: str) -> Tag:
    """Take the tag ``name`` off every contact in ``contact_ids``."""
    tag, _created = Tag.objects.get_or_create(name=name.strip())
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), CHUNK):
        Contact.tags.through.objects.filter(tag=tag, contact_id__in=ids[start : start + CHUNK]).delete()
    logger.info("tag %s removed from %s contacts", tag.pk, len(ids))
    return tag

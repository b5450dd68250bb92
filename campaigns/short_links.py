"""Short tracking links for SMS: /s/<code> stands for one link of one delivery.

A signed click token is too long for an SMS, so the destination is stored in a ShortLink row and
the link carries only a random code. The redirect can lead only to a stored destination, which our
own rendering wrote, so the short link is no open redirect.
"""

import logging
import secrets
import string

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from campaigns.models import Delivery, ShortLink

logger = logging.getLogger(__name__)

CODE_ALPHABET = string.ascii_letters + string.digits
# 62**8 is about 2 * 10**14 codes, so guessing one that exists is impractical.
CODE_LENGTH = 8
MAX_ATTEMPTS = 5


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def short_url(code: str) -> str:
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:short_link", args=[code])


def example_short_url() -> str:
    """Return a URL as long as a real short link, for previews and segment counts before anything is sent."""
    return short_url("x" * CODE_LENGTH)


def shorten(delivery: Delivery, url: str) -> str:
    """Return the short URL of ``url`` in this delivery, made once and reused by a retried send."""
    existing = ShortLink.objects.filter(delivery=delivery, url=url).values_list("code", flat=True).first()
    if existing:
        return short_url(existing)

    for _attempt in range(MAX_ATTEMPTS):
        try:
            with transaction.atomic():
                link = ShortLink.objects.create(delivery=delivery, url=url, code=new_code())
            return short_url(link.code)
        except IntegrityError:
            # Either the code was taken, or another dispatcher made this link first.
            existing = ShortLink.objects.filter(delivery=delivery, url=url).values_list("code", flat=True).first()
            if existing:
                return short_url(existing)
    raise RuntimeError(f"no free short link code after {MAX_ATTEMPTS} attempts for delivery {delivery.pk}")

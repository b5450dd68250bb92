"""Product recommendations derived from orders, for the {% product_recommendations %} block.

There is no product catalogue yet, so products are what recent ``order_placed`` events contain: their
line items, ranked by units sold. One query reads at most MAX_ORDERS recent orders of the last
MKTAUTO_RECOMMENDATION_DAYS days, and its ranking is cached in this process for
MKTAUTO_RECOMMENDATION_CACHE_SECONDS, so a dispatch batch of hundreds of messages runs it once.
A product's price, image and link are the ones its most recent order line carried.
"""

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from campaigns.products import ProductLine, product_line
from contacts.models import Event

logger = logging.getLogger(__name__)

# NOTE: the query filters on type and time, which no index covers because the event index starts
# with the contact. On a large table it scans, and the cache keeps that to one scan per cache period.
MAX_ORDERS = 2000
MAX_RECOMMENDATIONS = 6


@dataclass(frozen=True)
class Ranking:
    """Products by units sold, best first, with the category of each."""

    products: tuple[ProductLine, ...]
    built_at: float


_cache: dict[str, Ranking] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget the cached ranking, e.g. after importing orders or between tests."""
    with _lock:
        _cache.clear()


def ranking() -> Ranking:
    max_age = getattr(settings, "MKTAUTO_RECOMMENDATION_CACHE_SECONDS", 600)
    with _lock:
        cached = _cache.get("bestsellers")
        if cached is not None and time.monotonic() - cached.built_at < max_age:
            return cached

    built = build_ranking()
    with _lock:
        _cache["bestsellers"] = built
    return built


def build_ranking() -> Ranking:
    days = getattr(settings, "MKTAUTO_RECOMMENDATION_DAYS", 90)
    since = timezone.now() - timedelta(days=days)
    orders = (
        Event.objects.filter(type="order_placed", occurred_at__gte=since)
        .order_by("-occurred_at", "-id")
        .values_list("properties", flat=True)[:MAX_ORDERS]
    )

    sold: Counter[str] = Counter()
    latest: dict[str, ProductLine] = {}
    for properties in orders:
        items = properties.get("line_items") if isinstance(properties, dict) else None
        if not isinstance(items, list):
            continue
        for item in items:
            line = product_line(item)
            if line is None:
                continue
            sold[line.key] += line.quantity or 1
            # Orders are read newest first, so the first line seen is the most recent one.
            latest.setdefault(line.key, line)

    products = tuple(latest[key] for key, _count in sorted(sold.items(), key=lambda entry: (-entry[1], entry[0])))
    logger.info("product ranking built from recent orders: %s products", len(products))
    return Ranking(products=products, built_at=time.monotonic())


def recommend(*, count: int, category: str = "", exclude: set[str] | frozenset[str] = frozenset()) -> list[ProductLine]:
    """Return up to ``count`` bestsellers, those of ``category`` first, leaving out the product keys in ``exclude``."""
    count = max(1, min(count, MAX_RECOMMENDATIONS))
    candidates = [product for product in ranking().products if product.key not in exclude]
    if category:
        category_key = category.casefold()
        same = [product for product in candidates if product.category.casefold() == category_key]
        # Too few products in the category are topped up with bestsellers from elsewhere.
        others = [product for product in candidates if product.category.casefold() != category_key]
        candidates = same + others
    return candidates[:count]

"""Local time of a contact: their own time zone, or MKTAUTO_TIME_ZONE when they have none or an unknown one."""

from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings


@lru_cache(maxsize=512)
def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo(settings.MKTAUTO_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.MKTAUTO_TIME_ZONE)


def local_now(now: datetime, zone_name: str | None) -> datetime:
    return now.astimezone(zone(zone_name))


def at_local(day: date, moment: time, zone_name: str | None) -> datetime:
    """Return the aware datetime of a local wall-clock time; a time that DST skips moves forward an hour."""
    tz = zone(zone_name)
    local = datetime.combine(day, moment, tzinfo=tz)
    # A wall time inside the spring-forward gap does not exist; zoneinfo maps it with the earlier
    # offset, and the round trip through UTC shows the gap, so the real instant is one hour on.
    round_trip = local.astimezone(ZoneInfo("UTC")).astimezone(tz)
    if round_trip.replace(tzinfo=None) != local.replace(tzinfo=None):
        return round_trip
    return local

"""Telling machine opens and clicks from human ones. These are heuristics, documented so reports can be read honestly.

Mail privacy proxies load every image of a message, often at delivery, whether anyone reads it:
- Apple Mail Privacy Protection fetches through Apple's network (17.0.0.0/8) with the bare user
  agent "Mozilla/5.0".
- Gmail fetches through GoogleImageProxy ("via ggpht.com GoogleImageProxy" in the user agent) from
  Google's networks; Yahoo uses "YahooMailProxy".
- Brevo reports such opens itself as ``proxy_open`` and ``unique_proxy_open``.

Link scanners (Microsoft Defender Safe Links, Mimecast, Proofpoint, Barracuda and others) follow
every link of a message to check the target:
- they often click within seconds of delivery, sooner than a person can open and read;
- some send HEAD requests, which a browser following a link never does;
- many announce themselves in the user agent.

A scanner that looks exactly like a browser and clicks late from an unknown network counts as a
person. So the human counters are an upper bound, and the machine counters a lower one.
"""

import ipaddress
import logging
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings

logger = logging.getLogger(__name__)

# Apple's 17.0.0.0/8 block and Google ranges that its image proxy fetches from.
DEFAULT_PROXY_NETWORKS = (
    "17.0.0.0/8",
    "66.102.0.0/20",
    "66.249.80.0/20",
    "72.14.192.0/18",
    "74.125.0.0/16",
)
PROXY_AGENT_MARKERS = ("googleimageproxy", "ggpht.com", "yahoomailproxy")
APPLE_PROXY_AGENT = "Mozilla/5.0"
SCANNER_AGENT_MARKERS = (
    "bot",
    "spider",
    "crawler",
    "scanner",
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "safelinks",
    "messagelabs",
    "symantec",
    "trendmicro",
    "forcepoint",
    "zscaler",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "headlesschrome",
)
DEFAULT_SCANNER_SECONDS = 10


@lru_cache(maxsize=8)
def networks(specs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


def proxy_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return networks(tuple(getattr(settings, "MKTAUTO_MAIL_PROXY_NETWORKS", DEFAULT_PROXY_NETWORKS)))


def in_proxy_network(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    return any(address in network for network in proxy_networks())


def proxy_open_reason(user_agent: str, ip: str = "") -> str:
    """Return why an open looks like a mail privacy proxy's, or "" for an open that may be human."""
    agent = (user_agent or "").strip()
    lowered = agent.lower()
    marker = next((marker for marker in PROXY_AGENT_MARKERS if marker in lowered), "")
    if marker:
        return f"proxy user agent ({marker})"
    if agent == APPLE_PROXY_AGENT:
        return "Apple Mail Privacy Protection user agent"
    if ip and in_proxy_network(ip):
        return f"proxy network ({ip})"
    return ""


def scanner_click_reason(
    user_agent: str, *, method: str = "GET", clicked_at: datetime | None = None, delivered_at: datetime | None = None
) -> str:
    """Return why a click looks like a link scanner's, or "" for a click that may be human."""
    if method.upper() == "HEAD":
        return "HEAD request"
    lowered = (user_agent or "").lower()
    marker = next((marker for marker in SCANNER_AGENT_MARKERS if marker in lowered), "")
    if marker:
        return f"scanner user agent ({marker})"
    if clicked_at is not None and delivered_at is not None:
        window = timedelta(seconds=getattr(settings, "MKTAUTO_SCANNER_CLICK_SECONDS", DEFAULT_SCANNER_SECONDS))
        # A click before the recorded send time is a scanner racing our own bookkeeping.
        if clicked_at - delivered_at < window:
            return f"clicked {max((clicked_at - delivered_at).total_seconds(), 0):.0f} s after delivery"
    return ""

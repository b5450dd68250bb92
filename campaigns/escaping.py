"""Escaping merge values for the HTML version of a message, which is markdown before it is HTML."""

import re
from typing import Any

from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

# Characters that markdown gives a meaning to. A merge value's copies become numeric character
# references, which markdown leaves alone and the mail client shows as the character itself.
MARKDOWN_SPECIAL = re.compile(r"(&#?\w+;)|([\\`*_{}\[\]()#+\-.!|~=\r\n])")


def markdown_escape(value: Any) -> SafeString:
    """HTML-escape a merge value and make its markdown characters literal."""
    escaped = str(conditional_escape(value))
    return mark_safe(MARKDOWN_SPECIAL.sub(lambda match: match.group(1) or f"&#{ord(match.group(2))};", escaped))

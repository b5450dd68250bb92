"""The interface of SMS and WhatsApp backends, the errors they raise, and how dispatch picks one.

A backend sends one message and returns the provider's id for it. It raises TransientChannelError
for what may work later: timeouts, rate limits, the provider being down, an account problem that
staff can fix. It raises PermanentChannelError for a message the provider will never take, such as
an invalid number or an unknown template. Dispatch retries the first with back-off and fails the second.
"""

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

DEFAULT_BACKEND = "campaigns.channels.file.FileBackend"
BACKEND_SETTINGS = {"sms": "MKTAUTO_SMS_BACKEND", "whatsapp": "MKTAUTO_WHATSAPP_BACKEND"}


class ChannelError(Exception):
    """A message the backend could not send; the exception's message explains why."""


class TransientChannelError(ChannelError):
    """Sending failed for now; the same message may be sent later."""


class PermanentChannelError(ChannelError):
    """The provider will never take this message; retrying cannot help."""


@dataclass(frozen=True)
class ChannelMessage:
    """One SMS or WhatsApp message to one phone number in E.164 form (+31612345678)."""

    channel: str
    to: str
    # SMS.
    text: str = ""
    unicode: bool = False
    # WhatsApp.
    template_name: str = ""
    language: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    provider_template_id: int | None = None
    # Our name for the message, e.g. "delivery-12", for the provider's logs and webhooks.
    reference: str = ""
    transactional: bool = False


class ChannelBackend(ABC):
    """Sends messages of one channel. Dispatch opens a backend once per batch and closes it afterwards."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def open(self) -> None:  # noqa: B027 - most backends need no connection set-up.
        """Hook for opening a connection before the first message of a batch."""

    def close(self) -> None:  # noqa: B027
        """Hook for closing what open() opened."""

    @abstractmethod
    def send(self, message: ChannelMessage) -> str:
        """Send one message and return the provider's id for it ("" when the provider gives none)."""


def backend_path(channel: str) -> str:
    return getattr(settings, BACKEND_SETTINGS[channel], DEFAULT_BACKEND)


def get_backend(channel: str) -> ChannelBackend:
    """Return a new backend for the channel, as MKTAUTO_SMS_BACKEND or MKTAUTO_WHATSAPP_BACKEND names it."""
    if channel not in BACKEND_SETTINGS:
        raise ValueError(f"channel {channel!r} has no message backend; use one of {', '.join(BACKEND_SETTINGS)}")
    backend_class = import_string(backend_path(channel))
    return backend_class(channel)

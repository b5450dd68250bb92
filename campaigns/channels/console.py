"""A backend that prints each SMS or WhatsApp message, for development."""

import logging
import sys
import uuid
from typing import TextIO

from campaigns.channels.base import ChannelBackend, ChannelMessage

logger = logging.getLogger(__name__)


class ConsoleBackend(ChannelBackend):
    def __init__(self, channel: str, stream: TextIO | None = None) -> None:
        super().__init__(channel)
        self.stream = stream or sys.stdout

    def send(self, message: ChannelMessage) -> str:
        provider_id = f"console-{uuid.uuid4().hex}"
        lines = [f"{message.channel} to {message.to} ({message.reference or provider_id})"]
        if message.template_name:
            lines.append(f"template {message.template_name} [{message.language}] {message.parameters}")
        if message.text:
            lines.append(message.text)
        self.stream.write("\n".join(lines) + "\n" + "-" * 40 + "\n")
        self.stream.flush()
        return provider_id

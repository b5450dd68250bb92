"""The default backend: each SMS or WhatsApp message becomes one JSON file, so nothing leaves the machine.

Files go to MKTAUTO_CHANNEL_FILE_PATH/<channel>/, by default var/sms/ and var/whatsapp/.
"""

import json
import logging
import os
import uuid
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from campaigns.channels.base import ChannelBackend, ChannelMessage, TransientChannelError

logger = logging.getLogger(__name__)


def message_directory(channel: str) -> Path:
    base = getattr(settings, "MKTAUTO_CHANNEL_FILE_PATH", None) or Path(getattr(settings, "VAR_DIR", "var"))
    return Path(base) / channel


class FileBackend(ChannelBackend):
    def send(self, message: ChannelMessage) -> str:
        provider_id = f"file-{uuid.uuid4().hex}"
        directory = message_directory(message.channel)
        record = {**asdict(message), "provider_id": provider_id, "written_at": timezone.now().isoformat()}
        path = directory / f"{timezone.now():%Y%m%d-%H%M%S}-{provider_id}.json"
        temporary = path.with_suffix(".tmp")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # Written under a temporary name and renamed, so a reader never sees half a file.
            temporary.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as error:
            raise TransientChannelError(f"could not write {path}: {error}") from error
        return provider_id

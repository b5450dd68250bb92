"""Signal receivers that keep workflows in step with changes made elsewhere."""

from workflows.engine.exits import exit_for_withdrawn_consent


def exit_on_withdrawn_consent(sender, contact_ids: list[int], channel: str, at, **kwargs) -> None:
    exit_for_withdrawn_consent(contact_ids, channel, at)

"""Signal receivers that keep the outbox in step with consent."""

from campaigns.models import Delivery


def cancel_on_withdrawn_consent(sender, contact_ids: list[int], channel: str, at, **kwargs) -> None:
    """Cancel queued promotional deliveries on the channel; transactional ones still go."""
    Delivery.objects.filter(
        contact_id__in=contact_ids, channel=channel, transactional=False, status=Delivery.Status.QUEUED
    ).update(status=Delivery.Status.CANCELLED, error=f"unsubscribed from {channel}")

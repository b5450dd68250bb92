"""The privacy topics Shopify requires of every app, and app/uninstalled.

customers/data_request writes the customer's export for the merchant to send on, customers/redact
erases the customer, and shop/redact erases every contact that came from Shopify. Shopify sends
shop/redact 48 hours after the app is uninstalled (shopify.dev changelog "Apps now need to use
GDPR webhooks", 2018).
"""

import logging

from django.db.models import Q

from contacts.models import ConsentRecord, Contact, Event, Shop
from contacts.privacy import ERASED_PREFIX, erase_contact, save_export
from contacts.shopify.identities import CUSTOMER_ATTRIBUTE, find_contacts, read_identity
from contacts.shopify.payload import read_id, read_object
from contacts.shopify.webhook import Outcome, Webhook

logger = logging.getLogger(__name__)


def handle_uninstalled(webhook: Webhook) -> Outcome:
    """app/uninstalled: mark the shop inactive; its webhooks still verify for the privacy requests that follow."""
    shop = webhook.shop
    if shop is None:
        logger.warning("webhook %s: app uninstalled from %s, which has no Shop row", webhook.webhook_id, webhook.shop_domain)
        return Outcome(detail="no Shop row to mark inactive")

    Shop.objects.filter(pk=shop.pk).update(active=False, uninstalled_at=webhook.occurred_at)
    logger.warning("webhook %s: app uninstalled from shop %s; marked inactive", webhook.webhook_id, shop.domain)
    return Outcome(detail=f"shop {shop.domain} marked inactive")


def request_contacts(webhook: Webhook) -> list[Contact]:
    """Return the contacts a privacy request's customer id, email or phone number points to."""
    customer = read_object(webhook.payload, "customer")
    identity = read_identity(
        webhook.webhook_id, customer_id=customer.get("id"), emails=(customer.get("email"),), phones=(customer.get("phone"),)
    )
    return find_contacts(identity) if identity else []


def handle_data_request(webhook: Webhook) -> Outcome:
    """customers/data_request: write the export of every matching contact and log where it is.

    Shopify expects the app to hand the data to the merchant, who replies to the customer. The
    files under MKTAUTO_VAR_DIR/exports are readable by the service's user only.
    """
    request_id = read_id(read_object(webhook.payload, "data_request").get("id"), "data_request.id") or webhook.webhook_id
    contacts = request_contacts(webhook)
    if not contacts:
        return Outcome(detail=f"data request {request_id}: no contact held")

    paths = []
    for contact in contacts:
        path = save_export(contact, f"shopify-data-request-{request_id}", now=webhook.received_at)
        paths.append(str(path))
        logger.warning(
            "webhook %s: data request %s: export of contact %s written to %s; send it to the shop owner",
            webhook.webhook_id,
            request_id,
            contact.pk,
            path,
        )
    return Outcome(detail=f"data request {request_id}: exports {', '.join(paths)}")


def handle_customer_redact(webhook: Webhook) -> Outcome:
    """customers/redact: erase every contact the customer id, email or phone number points to."""
    contacts = request_contacts(webhook)
    for contact in contacts:
        erase_contact(contact, now=webhook.received_at)
    ids = [contact.pk for contact in contacts]
    return Outcome(detail=f"contacts {ids} erased")


def shopify_contacts() -> Q:
    """Return the condition for contacts that came from Shopify: a Shopify customer id, event or consent change."""
    return (
        Q(attributes__has_key=CUSTOMER_ATTRIBUTE)
        | Q(pk__in=Event.objects.filter(source=Event.Source.SHOPIFY).values("contact_id"))
        | Q(pk__in=ConsentRecord.objects.filter(source=Event.Source.SHOPIFY).values("contact_id"))
    )


def handle_shop_redact(webhook: Webhook) -> Outcome:
    """shop/redact: erase every contact that came from Shopify.

    Contacts do not record which shop they came from, so with one shop per installation this
    means every Shopify contact. With several Shop rows nothing is erased and an error is logged,
    because erasing another shop's customers cannot be undone. Contacts imported from a CSV
    export of the shop came through the merchant, not the app, and are kept.
    """
    shops = Shop.objects.count()
    if shops > 1:
        logger.error(
            "webhook %s: shop/redact for %s not carried out: %s shops are connected and contacts do not record "
            "their shop. Erase this shop's customers with the erase_contact command.",
            webhook.webhook_id,
            webhook.shop_domain,
            shops,
        )
        return Outcome(detail="several shops connected; nothing erased")

    contacts = list(Contact.objects.filter(shopify_contacts()).exclude(external_id__startswith=ERASED_PREFIX).order_by("pk"))
    for contact in contacts:
        erase_contact(contact, now=webhook.received_at)
    logger.warning("webhook %s: shop %s redacted: %s contacts erased", webhook.webhook_id, webhook.shop_domain, len(contacts))
    return Outcome(detail=f"{len(contacts)} contacts erased")

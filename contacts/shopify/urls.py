from django.urls import path

from contacts.shopify.views import shopify_webhook

urlpatterns = [
    path("", shopify_webhook, name="shopify-webhook"),
]

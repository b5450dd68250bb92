from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from contacts.api import EventsView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/events", EventsView.as_view(), name="api-events"),
    path("webhooks/shopify", include("contacts.shopify.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("anymail/", include("anymail.urls")),
    path("", include("campaigns.urls")),
]

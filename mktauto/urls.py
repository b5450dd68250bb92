from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView

from contacts.api import EventsView

admin.site.site_header = _("mktauto marketing automation")
admin.site.site_title = "mktauto"
admin.site.index_title = _("Workflows, contacts and messages")

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/events", EventsView.as_view(), name="api-events"),
    path("webhooks/shopify", include("contacts.shopify.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("anymail/", include("anymail.urls")),
    path("", include("campaigns.urls")),
]

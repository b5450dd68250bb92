from django.urls import path

from campaigns import views

app_name = "campaigns"

urlpatterns = [
    path("t/o/<str:token>.gif", views.open_pixel, name="open"),
    path("t/c/<str:token>/", views.click, name="click"),
    path("s/<str:code>", views.short_link, name="short_link"),
    path("u/example/", views.example_link, name="example_link"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("u/<str:token>/preferences/", views.preference_page, name="preferences"),
    path("confirm/<str:token>/", views.confirm_subscription, name="confirm"),
    path("campaigns/preview/<int:template_id>/<int:contact_id>/", views.preview, name="preview"),
]

"""The admin form for a Shopify shop, which never shows the stored webhook secret."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from contacts.models import Shop


class ShopForm(forms.ModelForm):
    webhook_secret = forms.CharField(
        label=_("webhook secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "The app's client secret (API secret key) from the app's settings in Shopify. It is never shown again; "
            "leave the field empty to keep the stored secret."
        ),
    )

    class Meta:
        model = Shop
        fields = ["domain", "name", "webhook_secret", "currency", "active"]

    def clean_webhook_secret(self) -> str:
        secret = self.cleaned_data["webhook_secret"]
        # The instance still contains the stored secret here, because the form's values are copied onto it after cleaning.
        if secret:
            return secret
        if self.instance.pk is not None and self.instance.webhook_secret:
            return self.instance.webhook_secret
        raise ValidationError(_("Enter the app's client secret. Without it no webhook from this shop can be verified."))

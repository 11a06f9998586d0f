from django import forms
from django.utils.translation import gettext_lazy as _


class UploadForm(forms.Form):
    image = forms.FileField(
        label=_("Photo"),
        help_text=_("A JPEG, PNG or WebP photo with one or more faces."),
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
        allow_empty_file=True,  # predictor.uploads explains empty files itself
    )

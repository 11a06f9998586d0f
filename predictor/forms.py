from django import forms
from django.utils.translation import gettext_lazy as _


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """One or more files; ``cleaned_data`` holds a list (a batch when it has several)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = [item for item in data if item] if isinstance(data, (list, tuple)) else [data]
        if not [item for item in files if item]:
            return [super().clean(None, initial)]  # "This field is required."
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class UploadForm(forms.Form):
    image = MultipleFileField(
        label=_("Photo"),
        help_text=_("A JPEG, PNG or WebP photo with one or more faces."),
        widget=MultipleFileInput(
            attrs={"accept": "image/jpeg,image/png,image/webp,.zip,application/zip"}
        ),
        allow_empty_file=True,  # predictor.uploads explains empty files itself
    )

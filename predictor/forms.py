from django import forms


class UploadForm(forms.Form):
    image = forms.FileField(
        label="Photo",
        help_text="A JPEG, PNG or WebP photo with one or more faces.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
        allow_empty_file=True,  # predictor.uploads explains empty files itself
    )

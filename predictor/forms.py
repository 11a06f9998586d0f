from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
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


AGE_MESSAGE = _("The real age must be a whole number of years from 0 to 100.")


class AgeLabelForm(forms.Form):
    """A face's real age, and whether it may be used to train (off unless ticked)."""

    age = forms.IntegerField(
        label=_("Real age"),
        min_value=0,
        max_value=100,
        error_messages={
            "required": AGE_MESSAGE,
            "invalid": AGE_MESSAGE,
            "min_value": AGE_MESSAGE,
            "max_value": AGE_MESSAGE,
        },
    )
    consent = forms.BooleanField(
        label=_("Let faceage use this face to improve its model"), required=False
    )
    # The face the page showed (its row's id), so a label never lands on whoever has the
    # number after the photo ran again.
    face = forms.IntegerField(required=False, widget=forms.HiddenInput)


class SignUpForm(UserCreationForm):
    """A new account: a user name, an email address (for password resets) and a password
    checked by AUTH_PASSWORD_VALIDATORS. The address is only stored once its owner confirms
    it (predictor.accounts), and whether another account has it is never said here."""

    email = forms.EmailField(
        label=_("Email address"),
        help_text=_(
            "Only for resetting your password. We send a link to confirm it, and nothing else."
        ),
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip()

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from training.models import Dataset, TrainingRun

MAX_TRAIN_IMAGES = 10_000_000
MAX_STEPS_PER_EPOCH = 100_000


class TrainingRunForm(forms.ModelForm):
    """What an admin chooses when starting a run."""

    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.filter(status=Dataset.Status.READY),
        label=gettext_lazy("Dataset"),
    )
    epochs = forms.IntegerField(min_value=1, max_value=200, initial=8, label=gettext_lazy("Epochs"))
    batch_size = forms.IntegerField(
        min_value=4, max_value=1024, initial=64, label=gettext_lazy("Batch size")
    )
    learning_rate = forms.FloatField(
        min_value=1e-6, max_value=1.0, initial=1e-3, label=gettext_lazy("Learning rate")
    )
    further_datasets = forms.CharField(
        required=False,
        label=gettext_lazy("Also learn from"),
        help_text=gettext_lazy(
            "Other ready datasets, comma-separated, each with its sampling weight relative "
            "to the dataset above (which weighs 1): for example ff:1, wiki:0.5"
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Bounds that keep a mistyped number from a run of years (a run stops at the worker's
        # time limit anyway): 100,000 steps of 64 faces is 6.4 million faces an epoch. The
        # fields are the model's; a bound set on a made field needs its validator too.
        for name, most in (
            ("max_train_images", MAX_TRAIN_IMAGES),
            ("max_steps_per_epoch", MAX_STEPS_PER_EPOCH),
        ):
            field = self.fields[name]
            field.validators += [MinValueValidator(1), MaxValueValidator(most)]
            field.widget.attrs.update(min=1, max=most)

    def clean_further_datasets(self):
        from training.mixes import MixError, parse_mix

        text = self.cleaned_data.get("further_datasets", "")
        items = [item for item in text.split(",") if item.strip()]
        try:
            return parse_mix(items)
        except MixError as error:
            raise forms.ValidationError(str(error)) from error

    def clean(self):
        cleaned = super().clean() or {}
        own = cleaned.get("dataset")
        if own is not None and any(
            d.pk == own.pk for d, _w in cleaned.get("further_datasets") or []
        ):
            self.add_error("further_datasets", _("The run's own dataset is already in it."))
        return cleaned

    class Meta:
        model = TrainingRun
        fields = [
            "dataset",
            "epochs",
            "batch_size",
            "learning_rate",
            "init",
            "max_train_images",
            "max_steps_per_epoch",
            "auto_promote",
        ]
        labels = {
            "init": gettext_lazy("Starting point"),
            "max_train_images": gettext_lazy("Max training images"),
            "max_steps_per_epoch": gettext_lazy("Max steps per epoch"),
            "auto_promote": gettext_lazy("Promote automatically"),
        }


class DatasetForm(forms.ModelForm):
    class Meta:
        model = Dataset
        fields = ["name", "kind", "source", "split_seed"]
        labels = {
            "name": gettext_lazy("Name"),
            "kind": gettext_lazy("Kind"),
            "source": gettext_lazy("Source"),
            "split_seed": gettext_lazy("Split seed"),
        }

    def clean_source(self):
        from training.datasets import DatasetError
        from training.importing import confined_source

        if self.cleaned_data.get("kind") == Dataset.Kind.FEEDBACK:
            return ""  # people's labels: the faces come from the database
        if not self.cleaned_data.get("source"):
            raise forms.ValidationError(_("Name the folder or CSV file to import."))
        try:
            source = confined_source(self.cleaned_data["source"])
        except DatasetError as error:
            roots = ", ".join(str(root) for root in settings.FACEAGE_IMPORT_ROOTS)
            raise forms.ValidationError(
                _(
                    "Datasets are imported only from under %(roots)s (FACEAGE_IMPORT_ROOTS); "
                    "put the data there, or a link to it."
                )
                % {"roots": roots}
            ) from error
        if not source.exists():
            raise forms.ValidationError(
                _("%(source)s does not exist on the server.") % {"source": source}
            )
        return str(source)

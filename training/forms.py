from django import forms

from training.models import Dataset, TrainingRun


class TrainingRunForm(forms.ModelForm):
    """What an admin chooses when starting a run."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.filter(status=Dataset.Status.READY))
    epochs = forms.IntegerField(min_value=1, max_value=200, initial=8)
    batch_size = forms.IntegerField(min_value=4, max_value=1024, initial=64)
    learning_rate = forms.FloatField(min_value=1e-6, max_value=1.0, initial=1e-3)

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


class DatasetForm(forms.ModelForm):
    class Meta:
        model = Dataset
        fields = ["name", "kind", "source", "split_seed"]

    def clean_source(self):
        from pathlib import Path

        source = Path(self.cleaned_data["source"]).expanduser()
        if not source.exists():
            raise forms.ValidationError(f"{source} does not exist on the server.")
        return str(source.resolve())

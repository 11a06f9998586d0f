"""Where a version's exports are kept, through Django's storage API (``STORAGES["exports"]``).

Names in that storage, for version ``pk`` with export key ``key``:

* ``exports/v{pk}-{key}-{stem}-savedmodel.zip`` and ``...-tflite.zip``: the downloads;
* ``exports/v{pk}-{key}.json``: the manifest, saved last. The exports are ready when it
  exists; it names the stored zips (a storage may rename a file it is given) and holds the
  build's parity report.

Whether a build is queued, running or failed (and why) is the export's job row
(``training.models.ModelExport``), not a file.

The key changes with the weights and with the card's metrics, so a version whose card
changed is built again, and the older files are removed once the new ones are published.
No TensorFlow here: the web process uses this module.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from training.export import EXPORT_FORMAT_VERSION, FORMATS, file_stem
from training.export.card import evaluation

if TYPE_CHECKING:
    from predictor.models import ModelVersion

FOLDER = "exports"


def export_storage() -> Storage:
    return storages["exports"]


def export_key(version: ModelVersion) -> str:
    """What an export depends on: the weights (name, artifact) and the card's metrics
    (the version's own, or the training-run baseline the card shows for the bundled one)."""
    measured = evaluation(version)
    card_metrics = [measured["run"], measured["metrics"]] if measured else None
    payload = json.dumps(
        [
            EXPORT_FORMAT_VERSION,
            version.name,
            version.artifact,
            version.metrics,
            card_metrics,
            getattr(version, "temperature", 1.0),
            getattr(version, "second_opinion", None) or {},  # the card inside names it
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ExportFiles:
    """The exports of one version in its current state, built or not."""

    def __init__(self, version: ModelVersion) -> None:
        self.version_prefix = f"v{version.pk}-"
        self.key = export_key(version)
        self.stem = file_stem(version)
        self.base = f"{FOLDER}/{self.version_prefix}{self.key}"
        self.storage = export_storage()

    @property
    def manifest_name(self) -> str:
        return f"{self.base}.json"

    def archive_name(self, fmt: str) -> str:
        """The name a format's zip is saved under (the manifest has the name it got)."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
        return f"{self.base}-{self.download_name(fmt)}"

    def download_name(self, fmt: str) -> str:
        """The file name a person downloads."""
        return f"{self.stem}-{fmt}.zip"

    # --- Reading ----------------------------------------------------------------------

    def manifest(self) -> dict[str, Any] | None:
        try:
            with self.storage.open(self.manifest_name, "rb") as handle:
                manifest = json.loads(handle.read())
        except (OSError, ValueError):  # missing, or being written
            return None
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict) or set(files) != set(FORMATS):
            return None
        return manifest

    def built(self) -> dict[str, Any] | None:
        """The manifest, when the exports are built: it is there, and so is each zip it names."""
        manifest = self.manifest()
        if manifest is None:
            return None
        try:
            present = all(self.storage.exists(name) for name in manifest["files"].values())
        except OSError:
            return None
        return manifest if present else None

    def ready(self) -> bool:
        return self.built() is not None

    def stored_name(self, fmt: str) -> str:
        """The stored name of a built format's zip; KeyError when not built."""
        manifest = self.manifest()
        if manifest is None:
            raise KeyError(fmt)
        return manifest["files"][fmt]

    def size(self, fmt: str) -> int:
        return self.storage.size(self.stored_name(fmt))

    # --- Writing (workers and the export command) -------------------------------------

    def publish(self, folder: Path, report: dict[str, Any]) -> bool:
        """Save the zips that :func:`training.export.build.write_exports` left in ``folder``,
        then the manifest. Returns False (and saves nothing) when another build of the same
        key was published first."""
        if self.ready():
            return False
        stored: dict[str, str] = {}
        try:
            for fmt in FORMATS:
                with (folder / self.download_name(fmt)).open("rb") as handle:
                    stored[fmt] = self.storage.save(self.archive_name(fmt), File(handle))
            manifest = {"files": stored, **report}
            saved = self.storage.save(
                self.manifest_name, ContentFile(json.dumps(manifest, indent=1).encode())
            )
        except Exception:
            for name in stored.values():  # nothing half-published stays behind
                self.storage.delete(name)
            raise
        if saved != self.manifest_name:  # another build's manifest got there first
            for name in (saved, *stored.values()):
                self.storage.delete(name)
            return False
        return True

    def remove(self) -> None:
        """Remove this key's files (a forced rebuild)."""
        manifest = self.manifest()
        names = list((manifest or {}).get("files", {}).values())
        # The manifest first: from then on no one reads the exports as built.
        for name in [self.manifest_name, *names]:
            self.storage.delete(name)

    def remove_stale(self) -> list[str]:
        """Remove the files of this version's other keys (older weights or card metrics)."""
        try:
            _, names = self.storage.listdir(FOLDER)
        except (OSError, NotImplementedError):
            return []
        stale = [
            name
            for name in names
            if name.startswith(self.version_prefix)
            and not name.startswith(self.base[len(FOLDER) + 1 :])
        ]
        # Manifests first, so that no one reads a stale key as built while its zips go.
        for name in sorted(stale, key=lambda name: not name.endswith(".json")):
            self.storage.delete(f"{FOLDER}/{name}")
        return stale


def export_files(version: ModelVersion) -> ExportFiles:
    """The exports of ``version`` in its current state, built or not."""
    return ExportFiles(version)

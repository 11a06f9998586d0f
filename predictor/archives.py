"""Several photos in one request, as separate parts or zip archives: a Batch of Predictions.

Each photo is checked exactly as a single upload is (predictor.uploads). Only Pillow and
zipfile run here: the web process never imports TensorFlow or dlib.
"""

from __future__ import annotations

import logging
import posixpath
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext

from predictor.messages import rejection_message
from predictor.models import Batch, Prediction
from predictor.tasks import enqueue_prediction
from predictor.uploads import owner_fields, read_upload, unsaved_prediction
from predictor.vision.image_loading import (
    FILE_TOO_LARGE,
    ImageRejected,
)

logger = logging.getLogger(__name__)


# --- Batches: several photos in one request (form or API) ------------------------------
#
# Rules (documented in docs/api.md, "Batches"):
# * A batch is several `image` parts, or zip archives (in `archive` or `image` parts), or
#   both; every photo counts towards FACEAGE_BATCH_MAX_FILES.
# * Problems with the request or an archive as a whole (too many files, a damaged or
#   encrypted zip, more uncompressed data than the batch may hold) reject the whole batch
#   with one error and nothing is created.
# * Problems with one file (not an image, too large, an unsafe path or a zip inside the zip,
#   or any reason a single upload would be refused) skip that file: the others are created
#   and the response lists each skipped file with its name, code and message. When no file
#   is usable the batch is rejected (400 no_usable_images) with the same list.

ZIP_MAGIC = b"PK\x03\x04"
# Archive entries that are metadata rather than photos; skipped silently.
_IGNORED_PREFIXES = ("__MACOSX/",)


class BatchRejected(Exception):
    """The whole batch is refused; ``problems`` lists per-file reasons when there are any."""

    def __init__(
        self, code: str, message: str, http_status: int = 400, problems: list | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.problems = problems or []


@dataclass
class FileProblem:
    name: str
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"name": self.name, "code": self.code, "message": self.message}


class FileSkipped(Exception):
    """One file of a batch cannot be used; the others go on."""

    def __init__(self, problem: FileProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass
class BatchFiles:
    """The photos of a batch, each with a function that reads it, and the files already set
    aside.

    Nothing is read up front: ``create_batch`` reads, checks and stores one photo at a time
    and lets its bytes go before the next, so a request holds one photo in memory (at most
    FACEAGE_MAX_UPLOAD_BYTES, plus its decoded pixels), not the whole batch. A reader raises
    FileSkipped for a file that turns out to be unusable."""

    items: list[tuple[str, Callable[[], bytes]]] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Files that count towards the cap and the upload rate (usable or not)."""
        return len(self.items) + len(self.problems)


def batch_max_files() -> int:
    return settings.FACEAGE_BATCH_MAX_FILES


def archive_max_total_bytes() -> int:
    """Most uncompressed bytes one batch may unpack to: the cap times the per-file limit."""
    return batch_max_files() * settings.FACEAGE_MAX_UPLOAD_BYTES


def too_many_files(count: int) -> BatchRejected:
    return BatchRejected(
        "too_many_files",
        gettext(
            "This batch has %(count)s files; at most %(max)s photos can be uploaded at once. "
            "Split them into several batches."
        )
        % {"count": count, "max": batch_max_files()},
        http_status=413,
    )


def too_many_parts() -> BatchRejected:
    """For a request with more file parts than Django will parse, so never counted."""
    return BatchRejected(
        "too_many_files",
        gettext(
            "This request has more than %(limit)s files; at most %(max)s photos can be "
            "uploaded at once. Split them into several batches."
        )
        % {"limit": settings.DATA_UPLOAD_MAX_NUMBER_FILES, "max": batch_max_files()},
        http_status=413,
    )


def is_archive(upload: UploadedFile) -> bool:
    """A zip, by its first bytes (the name alone is not trusted)."""
    upload.seek(0)
    head = upload.read(4)
    upload.seek(0)
    return head == ZIP_MAGIC


def _unsafe_member_name(name: str) -> bool:
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return True
    return ".." in posixpath.normpath(normalized).split("/") or ".." in normalized.split("/")


def _archive_files(upload: UploadedFile, into: BatchFiles) -> None:
    """Add the photos of one zip to ``into``; raises BatchRejected for a bad archive."""
    label = upload.name or "archive.zip"
    total_limit = archive_max_total_bytes()
    if upload.size is not None and upload.size > total_limit:
        raise BatchRejected(
            "archive_too_large",
            gettext("The archive %(name)s is larger than %(limit)s MB. Upload fewer photos.")
            % {"name": label, "limit": total_limit // 1048576},
            http_status=413,
        )
    upload.seek(0)
    try:
        source = upload.file if hasattr(upload, "file") else upload
        archive = zipfile.ZipFile(source)  # type: ignore[arg-type]  # an open binary file
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir() and not info.filename.startswith(_IGNORED_PREFIXES)
        ]
    # NotImplementedError: a zip that declares a format version or a compression zipfile lacks.
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        OSError,
        EOFError,
        ValueError,
    ):
        raise BatchRejected(
            "bad_archive",
            gettext("%(name)s is not a zip archive we can read. Create the zip again.")
            % {"name": label},
        ) from None
    if any(info.flag_bits & 0x1 for info in members):
        raise BatchRejected(
            "encrypted_archive",
            gettext(
                "%(name)s is password-protected. Upload a zip without a password, "
                "or the photos themselves."
            )
            % {"name": label},
        )
    if into.count + len(members) > batch_max_files():
        raise too_many_files(into.count + len(members))
    declared = sum(info.file_size for info in members)
    if declared > total_limit:
        raise BatchRejected(
            "archive_too_large",
            gettext(
                "%(name)s unpacks to %(size)s MB; a batch may hold at most %(limit)s MB. "
                "Upload fewer or smaller photos."
            )
            % {"name": label, "size": declared // 1048576, "limit": total_limit // 1048576},
            http_status=413,
        )
    limit = settings.FACEAGE_MAX_UPLOAD_BYTES
    for info in members:
        name = info.filename
        if _unsafe_member_name(name):
            into.problems.append(
                FileProblem(
                    name,
                    "unsafe_path",
                    gettext("This file's path leaves the archive's folder, so it was skipped."),
                )
            )
        elif info.file_size > limit:
            into.problems.append(_too_large(name, info.file_size))
        else:
            shown = posixpath.basename(name.replace("\\", "/")) or name
            into.items.append((shown, _member_reader(archive, info)))


def _member_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        name, limit = info.filename, settings.FACEAGE_MAX_UPLOAD_BYTES
        try:
            with archive.open(info) as member:
                data = member.read(limit + 1)  # never more than the limit, whatever it claims
        except Exception:  # BadZipFile, zlib.error, lzma.LZMAError, EOFError, a bad CRC...
            raise FileSkipped(
                FileProblem(
                    name,
                    "bad_archive_member",
                    gettext("This file is damaged inside the archive and could not be read."),
                )
            ) from None
        if len(data) > limit:
            raise FileSkipped(_too_large(name, len(data)))
        if data[:4] == ZIP_MAGIC:
            raise FileSkipped(
                FileProblem(
                    name,
                    "nested_archive",
                    gettext("Archives inside the archive are not opened. Put the photos in it."),
                )
            )
        return data

    return read


def _too_large(name: str, size: int) -> FileProblem:
    rejected = ImageRejected(
        "file_too_large",
        FILE_TOO_LARGE,
        size=f"{size / 1048576:.0f} MB",
        limit=f"{settings.FACEAGE_MAX_UPLOAD_BYTES / 1048576:.0f} MB",
    )
    return FileProblem(name, rejected.code, rejection_message(rejected))


def collect_batch_files(uploads: list[UploadedFile]) -> BatchFiles:
    """Read the uploaded files and unpack zips, enforcing the cap and the archive rules."""
    if len(uploads) > batch_max_files():
        raise too_many_files(len(uploads))
    collected = BatchFiles()
    for upload in uploads:
        name = (upload.name or "")[:255]
        if is_archive(upload):
            _archive_files(upload, collected)
            continue
        if collected.count + 1 > batch_max_files():
            raise too_many_files(collected.count + 1)
        collected.items.append((name, _upload_reader(upload)))
    return collected


def _upload_reader(upload: UploadedFile) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return read_upload(upload)
        except ImageRejected as rejected:
            name = (upload.name or "")[:255]
            raise FileSkipped(
                FileProblem(name, rejected.code, rejection_message(rejected))
            ) from None

    return read


def create_batch(
    request: HttpRequest, files: BatchFiles
) -> tuple[Batch, list[Prediction], list[FileProblem]]:
    """Check every photo like a single upload; create the usable ones in one transaction.

    Raises BatchRejected (no_usable_images) when not one photo can be used.
    """
    problems = list(files.problems)
    predictions = []
    for name, read in files.items:
        try:
            predictions.append(unsaved_prediction(request, name, read()))
        except FileSkipped as skipped:
            problems.append(skipped.problem)
        except ImageRejected as rejected:
            problems.append(FileProblem(name, rejected.code, rejection_message(rejected)))
    if not predictions:
        if not problems:
            raise BatchRejected("required", gettext("Choose at least one photo."))
        raise BatchRejected(
            "no_usable_images",
            gettext("None of the %(count)s files could be used: %(name)s: %(reason)s")
            % {"count": len(problems), "name": problems[0].name, "reason": problems[0].message},
            problems=problems,
        )
    owner = owner_fields(request)
    with transaction.atomic():
        batch = Batch.objects.create(**owner)
        for prediction in predictions:
            prediction.batch = batch
            prediction.save()
        ids = [prediction.pk for prediction in predictions]
        transaction.on_commit(lambda: [enqueue_prediction(pk) for pk in ids])
    return batch, predictions, problems

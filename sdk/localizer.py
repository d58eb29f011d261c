"""Localizer: where in this picture does this sound come from?

    loc = Localizer.load("model.onnx")        # .pt checkpoint, .onnx, or TensorRT .engine
    result = loc("frame.jpg", "clip.wav")      # or arrays: loc(rgb, waveform, sample_rate=44100)
    result.box, result.peak, result.score, result.window   # window: the seconds of sound heard
    loc("frame.jpg", "clip.wav", start=0.0)    # hear the first clip_seconds, not the centre ones
    result.save_overlay("overlay.png", "frame.jpg")

Every backend is a callable ``(frames [B, 3, 224, 224], log_mel [B, N, 1, 96, 64]) -> raw
cosine maps [B, h, w]`` (numpy), so a Localizer can also be scored with
``avsdk.evaluation.evaluate(loc.predict, samples, transform=loc.transform)``.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from avsdk import metrics
from avsdk.errors import AvsdkError, CheckpointError, InputError, _describe, bad_input
from avsdk.frames import MAX_PIXELS, canonical_transform, check_max_pixels

Backend = Callable[..., np.ndarray]
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")  # what runs a model file (Localizer.load)
SUFFIXES = {".pt": "torch", ".pth": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt",
            ".trt": "tensorrt"}

THRESHOLD = 0.5  # the region of the box: normalised heatmap >= 0.5 (the value rule of docs/method.md, "Evaluation")
#: the box and the peak are found on the heatmap of a grid at most this many pixels on its
#: longer side (the frame's own pixels when it is no larger), then scaled to the frame's
#: pixels: a 12 MP photo's box costs milliseconds instead of the whole float heatmap
BOX_GRID_SIDE = 1024


@dataclass(frozen=True, eq=False, init=False)
class LocalizationResult:
    """Where the sound comes from, in the coordinates of the original image.

    heatmap: float32 [H, W] in [0, 1], min-max normalised, at the image's size. Computed on
        first use and then kept (a 12 MP frame's is 48 MB; the box and peak do not need it).
    similarity: float32 [h, w], the raw cosine map of the network (e.g. 14x14).
    box: (x0, y0, x1, y1), end-exclusive, of the connected region heatmap >= 0.5 that holds
        the peak. For a frame larger than BOX_GRID_SIDE on a side it is found on the heatmap
        of a grid that size and scaled to the frame: its edges are then within a grid pixel or
        two (4 to 8 pixels of a 4000-pixel-wide photo) of the full-size heatmap's region, unless
        two regions nearly touch or two maxima nearly tie, where the grid may choose the other.
    peak: (x, y) of the heatmap's maximum (on that grid, scaled, for a frame larger than it).
    score: the largest raw cosine similarity (how strongly the sound matches anything).
    on_screen: probability that the sound's source is in the picture at all (calibrated on
        validation pairs, avsdk.visibility), or None for a model saved without a calibration.
        Below 0.5 the heatmap and box point at the best match of a sound that is most
        likely off screen, silent or noise.
    window: (start, end), the seconds of the sound the model heard (avsdk.audio.heard_window):
        the centre clip_seconds unless the call chose ``start``; (0, duration) for a sound
        shorter than the clip, which is heard whole, tiled. None when not known.

    ``heatmap`` may be given as the array or as a function of no arguments that returns it.
    """

    similarity: np.ndarray
    box: tuple[int, int, int, int]
    peak: tuple[int, int]
    score: float
    on_screen: float | None = None
    window: tuple[float, float] | None = None

    def __init__(self, heatmap, similarity: np.ndarray, box: tuple[int, int, int, int],
                 peak: tuple[int, int], score: float, on_screen: float | None = None,
                 window: tuple[float, float] | None = None):
        for name, value in (("_heatmap", heatmap), ("similarity", similarity), ("box", box), ("peak", peak),
                            ("score", score), ("on_screen", on_screen), ("window", window)):
            object.__setattr__(self, name, value)

    @property
    def heatmap(self) -> np.ndarray:
        value = self._heatmap
        if callable(value):  # computed once, on first use
            value = value()
            object.__setattr__(self, "_heatmap", value)
        return value

    def save_overlay(self, path: str | os.PathLike, image, alpha: float = 0.5) -> Path:
        """Write the heatmap, box and peak over ``image`` (the localized frame) as a PNG."""
        from avsdk.overlay import save_overlay

        return save_overlay(path, image, self.heatmap, box=self.box, peak=self.peak, alpha=alpha)

    def to_dict(self) -> dict:
        """box, peak, score, on_screen and window as plain JSON-ready values (the maps left out)."""
        window = None if self.window is None else {"start": self.window[0], "end": self.window[1]}
        return {"box": [int(v) for v in self.box], "peak": [int(v) for v in self.peak], "score": float(self.score),
                "on_screen": None if self.on_screen is None else float(self.on_screen), "window": window}


def heatmap_at_image_size(similarity: np.ndarray, height: int, width: int,
                          transform: str = "stretch") -> np.ndarray:
    """Raw map [h, w] -> normalised heatmap float32 [height, width] over the original image.

    "stretch" frames are the whole image resized to 224x224, so the map stretches back over it.
    "centre_crop" frames are the centre square of the image: the map covers that square (placed
    as the crop was, up to rounding) and the rest of the image gets the map's minimum (0 once
    normalised).

    The values are those of ``metrics.normalize_map(metrics.resize_bilinear(...))``, computed
    band by band into the float32 result: a 12 MP frame needs its 48 MB and a few more, not
    the 300 MB of whole-image float64 intermediates.
    """
    transform = canonical_transform(transform)
    similarity = _finite_map(similarity)
    height, width = _image_side("height", height), _image_side("width", width)
    heatmap = np.empty((height, width), dtype=np.float32)
    if transform == "stretch":
        _resize_into(similarity, heatmap)
    else:
        side = min(height, width)
        top, left = int(round((height - side) / 2.0)), int(round((width - side) / 2.0))
        square = heatmap[top : top + side, left : left + side]
        _resize_into(similarity, square)
        low = square.min()
        heatmap[:top], heatmap[top + side :] = low, low
        heatmap[top : top + side, :left], heatmap[top : top + side, left + side :] = low, low
    _normalize_in_place(heatmap)
    return heatmap


_BAND = 1 << 21  # values per band of rows computed at once (16 MB of float64)


def _resize_into(similarity: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = metrics.resize_bilinear(similarity, out.shape)``, a band of rows at a time."""
    if similarity.shape == out.shape:
        out[...] = similarity
        return
    rows = metrics._interpolation_matrix(similarity.shape[0], out.shape[0])
    cols = metrics._interpolation_matrix(similarity.shape[1], out.shape[1])
    source = similarity.astype(np.float64)
    step = max(1, _BAND // out.shape[1])
    for start in range(0, out.shape[0], step):
        out[start : start + step] = rows[start : start + step] @ source @ cols.T


def _normalize_in_place(heatmap: np.ndarray) -> None:
    """``heatmap[...] = metrics.normalize_map(heatmap)`` (the same float32 arithmetic), by bands."""
    low, high = heatmap.min(), heatmap.max()  # float32 scalars
    if high == low:
        heatmap[...] = 1.0
        return
    span = high - low
    step = max(1, _BAND // heatmap.shape[1])
    for start in range(0, heatmap.shape[0], step):
        band = heatmap[start : start + step]
        band -= low
        band /= span


def _finite_map(similarity) -> np.ndarray:
    similarity = np.asarray(similarity, dtype=np.float32)
    if similarity.ndim != 2 or similarity.size == 0 or not np.isfinite(similarity).all():
        raise bad_input("similarity", "a finite map [h, w]", similarity)
    return similarity


def _image_side(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise bad_input(name, "a positive int (pixels)", value)
    return int(value)


def _box_grid(height: int, width: int) -> tuple[int, int]:
    """The (height, width) the box and peak are found at: the frame's, at most BOX_GRID_SIDE."""
    longer = max(height, width)
    if longer <= BOX_GRID_SIDE:
        return height, width
    scale = BOX_GRID_SIDE / longer
    return max(1, round(height * scale)), max(1, round(width * scale))


def result_from_similarity(similarity: np.ndarray, height: int, width: int, transform: str = "stretch",
                           on_screen: float | None = None, window=None) -> LocalizationResult:
    """Build the typed result of one raw map [h, w] for an image of height x width pixels
    (``window``: the seconds of sound heard, see LocalizationResult).

    The box and peak come from the heatmap at the frame's size when its longer side is at
    most BOX_GRID_SIDE, else from one at that size, scaled (see LocalizationResult); the
    full-size heatmap of a larger frame is computed when ``result.heatmap`` is first read.
    """
    from avsdk.regions import component_box

    transform = canonical_transform(transform)
    similarity = _finite_map(similarity)
    height, width = _image_side("height", height), _image_side("width", width)
    grid_height, grid_width = _box_grid(height, width)
    grid = heatmap_at_image_size(similarity, grid_height, grid_width, transform)
    x, y = metrics.peak(grid)
    x0, y0, x1, y1 = component_box(grid >= THRESHOLD, (x, y))
    if (grid_height, grid_width) == (height, width):
        heatmap = grid
    else:  # grid pixel edges to frame pixel edges (outwards), the peak's centre to its pixel
        sx, sy = width / grid_width, height / grid_height
        x0, y0 = int(np.floor(x0 * sx)), int(np.floor(y0 * sy))
        x1, y1 = min(width, int(np.ceil(x1 * sx))), min(height, int(np.ceil(y1 * sy)))
        x, y = min(width - 1, int((x + 0.5) * sx)), min(height - 1, int((y + 0.5) * sy))

        def heatmap():
            return heatmap_at_image_size(similarity, height, width, transform)
    return LocalizationResult(heatmap=heatmap, similarity=similarity, box=(x0, y0, x1, y1), peak=(x, y),
                              score=float(similarity.max()), on_screen=on_screen, window=window)


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


def _onnx_backend(path: Path, transform: str | None, device: str = "cpu",
                  provider: str | None = None) -> tuple[RunnerBackend, dict]:
    from avsdk.manifest import manifest_path
    from avsdk.onnx_runtime import OnnxRunner, providers_for

    providers = providers_for(device, provider)
    try:
        runner = OnnxRunner(path, providers)
    except AvsdkError:
        raise
    except Exception as exc:  # ONNX Runtime's own errors (InvalidProtobuf, Fail, ...) share no base
        raise CheckpointError(f"{str(path)!r} is not a loadable ONNX model: {exc}") from exc
    settings = _preprocessing(path, transform)
    defaults = not manifest_path(path).is_file()
    if defaults:  # with the graph's own frame size
        settings["image_size"] = runner.image_size
    _check_graph_inputs(runner, path, settings)
    _check_onnx_weights(path)
    if defaults:
        _warn_no_manifest(path, settings)
    batch = runner.session.get_inputs()[0].shape[0]
    return RunnerBackend(runner, "onnxruntime", batch if isinstance(batch, int) else None), settings


def _warn_no_manifest(path: Path, settings: dict) -> None:
    """A graph without its manifest runs with the default preprocessing: say so, as a graph
    trained on other clips or frames would give maps that look plausible and are wrong."""
    from avsdk.manifest import manifest_path

    warnings.warn(  # stacklevel: the caller of Localizer.load
        f"ONNX graph {str(path)!r} has no manifest {manifest_path(path).name!r}: running it with the default "
        f"preprocessing (transform {settings.get('transform', 'stretch')!r}, 3.0 s clips, log-mel audio, "
        f"{settings['image_size']} px frames read off the graph) and no on-screen calibration; keep the "
        ".json that avsdk.export writes beside the graph", stacklevel=4)


def _engine_backend(path: Path, transform: str | None, gpu: int = 0) -> tuple[RunnerBackend, dict]:
    from avsdk.tensorrt_runtime import TensorRTRunner  # imports TensorRT lazily

    return RunnerBackend(TensorRTRunner(path, device=gpu), "tensorrt"), _preprocessing(path, transform)


def default_engine_cache() -> Path:
    """Where Localizer.load(..., backend="tensorrt") keeps the engines it builds from ONNX
    files: $AVSDK_ENGINE_CACHE, else $XDG_CACHE_HOME/avsdk/engines (~/.cache/avsdk/engines)."""
    if os.environ.get("AVSDK_ENGINE_CACHE"):
        return Path(os.environ["AVSDK_ENGINE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "avsdk" / "engines"


def _onnx_engine(path: Path, cache_dir) -> Path:
    """The TensorRT engine of an ONNX file on this GPU, built on first use and reused after
    (avsdk.export.tensorrt_build.cached_engine: the cache name holds the TensorRT version,
    the GPU and the file's hash): int8 for a Q/DQ graph, fp16 otherwise."""
    from avsdk.errors import require
    from avsdk.export.tensorrt_build import EngineConfig, cached_engine, onnx_precision

    require("tensorrt", "export", "building a TensorRT engine from an ONNX file")
    precision = "int8" if onnx_precision(path) == "int8" else "fp16"
    return cached_engine(path, Path(cache_dir) if cache_dir is not None else default_engine_cache(),
                         EngineConfig(precision))


def _preprocessing(artifact: Path, transform: str | None = None) -> dict:
    """transform, clip length, audio input, image size and visibility calibration from the
    artifact's sidecar manifest, if it has one, checked (CheckpointError naming the manifest);
    ``transform``, when given, is the caller's override of the manifest's."""
    from avsdk.manifest import manifest_path, read_manifest

    if not manifest_path(artifact).is_file():
        return {} if transform is None else {"transform": transform}
    manifest = read_manifest(artifact)
    prep = manifest.preprocessing
    where = f"manifest {str(manifest_path(artifact))!r} preprocessing"
    with _from_file(where, ("audio kind", "sample_rate")):
        audio = prep.audio_spec()
    settings = {"transform": prep.transform, "clip_seconds": prep.clip_seconds, "audio": audio,
                "image_size": prep.image_size}
    settings = _file_settings(settings, where, transform)
    settings["visibility"] = _calibration(manifest.visibility, f"{manifest_path(artifact)}: visibility")
    return settings


def _calibration(data, where: str):
    """The Calibration stored with a model, None when it has none."""
    if not data:
        return None
    from avsdk.visibility import Calibration

    return Calibration.from_json(data, where)


@contextmanager
def _from_file(where: str, arguments):
    """An InputError about one of ``arguments`` becomes a CheckpointError saying the value came
    from ``where`` (a checkpoint's meta, a manifest): the caller never passed it."""
    try:
        yield
    except InputError as exc:
        if exc.argument not in arguments:
            raise
        raise CheckpointError(f"{where}: {exc} (the value saved with the model)") from None


def _file_settings(settings: dict, where: str, transform: str | None) -> dict:
    """``settings`` read from a model file, checked as Localizer checks its arguments, an error
    naming ``where``; the file's transform by its current name (a file written before the
    rename holds "sacl" or "sspl"). ``transform``, when not None, is the caller's override,
    already checked by Localizer.load."""
    from_file = set(settings)
    if transform is not None:
        settings["transform"] = transform
        from_file.discard("transform")
    with _from_file(where, from_file):
        if "transform" in settings:
            settings["transform"] = canonical_transform(settings["transform"], stored=True)
        _check_settings(**{k: v for k, v in settings.items() if k != "transform"})
    return settings


def _check_settings(clip_seconds: float = 3.0, audio=None, image_size: int = 224):
    """The model's preprocessing settings, checked; returns the AudioSpec (the default one for None)."""
    from avsdk.audio import clip_samples
    from avsdk.audio_input import AudioSpec
    from avsdk.melspec import MIN_SAMPLES_EXAMPLE, SAMPLE_RATE

    if audio is not None and not isinstance(audio, AudioSpec):
        raise bad_input("audio", "None or an avsdk.audio_input.AudioSpec", audio)
    audio = audio or AudioSpec()
    if audio.kind == "log_mel" and clip_samples(clip_seconds) < MIN_SAMPLES_EXAMPLE:
        raise bad_input("clip_seconds", f">= {MIN_SAMPLES_EXAMPLE / SAMPLE_RATE} s (one 96-frame log-mel "
                        "example)", clip_seconds)
    _image_side("image_size", image_size)
    return audio


def _check_graph_inputs(runner, path: Path, settings: dict) -> None:
    """The graph takes the inputs the Localizer will feed it, by its manifest's preprocessing
    (the defaults without one): else a CheckpointError now, not an error naming ``frame`` or
    ``log_mel`` at every call."""
    from avsdk.audio_input import AudioSpec
    from avsdk.manifest import manifest_path

    spec = settings.get("audio") or AudioSpec()
    size = settings["image_size"]
    frame_input, audio_input = runner.session.get_inputs()
    feeds = ((frame_input, "frame", (3, size, size)),
             (audio_input, spec.kind, spec.item_shape(settings.get("clip_seconds", 3.0))))
    manifest = manifest_path(path)
    source = (f"its manifest {str(manifest)!r}" if manifest.is_file()
              else f"the default preprocessing (it has no manifest {manifest.name!r})")
    for graph_input, name, item in feeds:
        dims = list(graph_input.shape)
        if graph_input.name == name and len(dims) == len(item) + 1 and all(
                not isinstance(d, int) or d == want for d, want in zip(dims[1:], item)):
            continue
        shown = ", ".join(str(d) for d in dims)
        raise CheckpointError(
            f"ONNX graph {str(path)!r} takes {graph_input.name} [{shown}], but by {source} avsdk feeds it "
            f"{name} [B, {', '.join(map(str, item))}]: the graph and its preprocessing do not belong "
            "together (re-export the model, which writes both)")


def _check_onnx_weights(path: Path) -> None:
    """CheckpointError naming the graph when a float initializer holds NaN or Inf (with the
    onnx package; ONNX Runtime alone cannot read them, and such a model returns NaN maps)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return
    try:
        graph = onnx.load(str(path)).graph
    except Exception:  # ONNX Runtime read it; a quirk of the onnx package is no reason to refuse it
        return
    tensors = [(t.name, t) for t in graph.initializer]
    tensors += [(node.output[0], a.t) for node in graph.node if node.op_type == "Constant"
                for a in node.attribute if a.name == "value"]
    bad = []
    for name, tensor in tensors:
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind == "f" and values.size and not np.isfinite(values).all():
            bad.append(f"{name} ({int((~np.isfinite(values)).sum())} of {values.size})")
    if bad:
        raise CheckpointError(f"ONNX graph {str(path)!r} {_nonfinite_message(bad)}")


def _nonfinite_weights(model) -> list[str]:
    """Names (and counts) of the float tensors of a torch module that hold NaN or Inf."""
    import torch

    bad = []
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            count = int((~torch.isfinite(tensor)).sum())
            if count:
                bad.append(f"{name} ({count} of {tensor.numel()})")
    return bad


def _nonfinite_message(bad: list[str]) -> str:
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return (f"holds weights that are NaN or Inf: {shown}; every map it computes would be NaN "
            "(a training run that diverged?)")


def _check_finite_weights(model, where: str) -> None:
    bad = _nonfinite_weights(model)
    if bad:
        raise CheckpointError(f"{where} {_nonfinite_message(bad)}")


def _all_finite(value) -> bool:
    if hasattr(value, "detach"):
        import torch

        return bool(torch.isfinite(value.detach()).all()) if value.is_floating_point() else True
    value = np.asarray(value)
    return bool(np.isfinite(value).all()) if value.dtype.kind in "fc" else True


# ------------------------------------------------------------------------- Localizer


class Localizer:
    """Sound source localization with a trained model on any backend.

    Args:
        backend: ``(frames [B, 3, S, S], log_mel [B, N, 1, 96, 64]) -> maps [B, h, w]``.
        transform: the frame transform the model expects: "stretch" (the whole frame resized to
            S x S) or "centre_crop" (the centre square of the frame, resized to S x S).
        clip_seconds: audio length the model was trained on (3 s; docs/method.md, "Inputs").
        frontend: the log-mel implementation, "auto" (compiled when built, else numpy),
            "compiled" or "numpy" (avsdk.frontend's ``implementation``).
        visibility: an avsdk.visibility.Calibration; results then carry ``on_screen``.
        audio: the graph's audio input (avsdk.audio_input.AudioSpec; log-mel by default).
        max_pixels: frames of more pixels (width x height) are refused with an InputError
            naming ``frame``, from a file's header before it is decoded; None for no limit.
            The default, avsdk.frames.MAX_PIXELS, is 120 million (a 108 MP photo passes).
        image_size: the side S of the square frames the backend takes (224, docs/method.md, "Inputs").

    A Localizer made by ``load`` names its model file in errors about what the model returns
    (``source``); one given a ``backend`` names ``backend``.
    """

    def __init__(self, backend: Backend, transform: str = "stretch", clip_seconds: float = 3.0,
                 frontend: str = "auto", visibility=None, audio=None, max_pixels: int | None = MAX_PIXELS,
                 image_size: int = 224):
        if not callable(backend):
            raise bad_input("backend", "a callable (frames, log_mel) -> maps [B, h, w]", backend)
        transform = canonical_transform(transform)
        audio = _check_settings(clip_seconds, audio, image_size)
        from avsdk.frontend import IMPLEMENTATIONS

        if frontend not in IMPLEMENTATIONS:
            raise bad_input("frontend", f"one of {IMPLEMENTATIONS}", frontend)
        from avsdk.visibility import Calibration

        if visibility is not None and not isinstance(visibility, Calibration):
            raise bad_input("visibility", "None or an avsdk.visibility.Calibration", visibility)
        self.audio = audio
        self.backend = backend
        self.transform = transform
        self.clip_seconds = float(clip_seconds)
        self.frontend = frontend
        self.visibility = visibility
        self.max_pixels = check_max_pixels(max_pixels)
        self.image_size = int(image_size)
        self.source: str | None = None  # the model file, e.g. "checkpoint 'edge.pt'", set by load

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", type(self.backend).__name__)

    def __repr__(self) -> str:
        return f"Localizer(backend={self.backend_name!r}, transform={self.transform!r})"

    # -- construction ------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None, transform: str | None = None,
             frontend: str = "auto", max_pixels: int | None = MAX_PIXELS, backend: str = "auto",
             provider: str | None = None, cache_dir: str | os.PathLike | None = None) -> "Localizer":
        """Load a model file and run it on ``device`` with ``backend``.

        Args:
            path: ``.pt`` (avsdk checkpoint), ``.onnx`` (avsdk.export graph) or ``.engine``
                (TensorRT engine built by export/build_engine.py, with its manifest).
            device: "cpu", "cuda" or "cuda:N"; None: the CPU, or GPU 0 for an engine. A
                ``.pt`` runs there with torch, an ``.onnx`` with ONNX Runtime's provider for it
                (CUDA on a GPU), an engine on that GPU. A device whose provider or library is
                missing is refused: nothing falls back to the CPU silently.
            transform: override the frame transform recorded with the model ("stretch" or
                "centre_crop").
            frontend: log-mel implementation ("auto", "compiled", "numpy").
            max_pixels: the largest frame accepted (see Localizer).
            backend: "auto" (by the file's extension), or "tensorrt" for an ``.onnx`` file:
                build its engine for this GPU on first use (int8 for a Q/DQ graph, else fp16)
                and reuse it after, from ``cache_dir``; "torch" / "onnxruntime" must match the file.
            provider: for an ``.onnx`` on a GPU, ONNX Runtime's "cuda" (default) or "tensorrt"
                execution provider.
            cache_dir: where backend="tensorrt" keeps engines (default: default_engine_cache()).
        Raises:
            InputError: missing file, unknown extension, device, backend, transform, frontend
                or max_pixels; an ONNX Runtime session that did not start on the device's provider.
            CheckpointError: a bad model file: unreadable, weights that do not match its network
                or hold NaN/Inf, settings in a checkpoint's meta or a manifest that are not
                valid, an ONNX graph whose inputs and outputs are not those of an avsdk model
                (non-float inputs, shapes its preprocessing does not give).
            MissingDependencyError: torch, onnxruntime (or its GPU build), TensorRT or
                cuda-python not installed for that file and device.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise bad_input("path", "a str or os.PathLike to a .pt, .onnx or .engine file", path)
        path = Path(path)
        if not path.is_file():
            raise bad_input("path", "an existing .pt, .onnx or .engine file", str(path), described=True)
        max_pixels = check_max_pixels(max_pixels)
        if transform is not None:
            transform = canonical_transform(transform)
        if backend not in BACKENDS:
            raise bad_input("backend", f"one of {BACKENDS}", backend)
        natural = SUFFIXES.get(path.suffix.lower())
        if natural is None:
            raise bad_input("path", "a file ending in .pt, .onnx or .engine", str(path), described=True)
        if backend not in ("auto", natural) and not (natural == "onnxruntime" and backend == "tensorrt"):
            raise bad_input("backend", f"'auto' or {natural!r} for a {path.suffix} file"
                            + (" ('tensorrt' builds an engine from an .onnx file)" if natural == "torch" else ""),
                            backend)
        backend = natural if backend == "auto" else backend
        if provider is not None and backend != "onnxruntime":
            raise bad_input("provider", "None except for an .onnx file run by ONNX Runtime", provider)
        if backend == "tensorrt":
            from avsdk.onnx_runtime import parse_device

            kind, gpu = parse_device("cuda" if device is None else device)
            if kind != "cuda":
                raise bad_input("device", "'cuda' or 'cuda:N' (TensorRT runs on a GPU)", device)
        if natural == "torch":
            from avsdk.errors import require

            require("torch", "torch", "running a .pt checkpoint (export it to ONNX for a device without torch)")
            from avsdk.models import load_checkpoint

            model, meta = load_checkpoint(path, map_location="cpu")
            source = f"checkpoint {str(path)!r}"
            _check_finite_weights(model, source)
            settings = {k: meta[k] for k in ("transform", "clip_seconds") if k in meta}
            settings["audio"] = model.audio_spec
            settings["image_size"] = model.config.image_size
            settings = _file_settings(settings, f"{source} meta", transform)
            settings["visibility"] = _calibration(meta.get("visibility"), f"{path}: meta visibility")
            runner = TorchBackend(model, "cpu" if device is None else device)
        elif backend == "onnxruntime":
            source = f"ONNX graph {str(path)!r}"
            runner, settings = _onnx_backend(path, transform, "cpu" if device is None else device, provider)
        else:
            engine = _onnx_engine(path, cache_dir) if natural == "onnxruntime" else path
            source = f"TensorRT engine {str(engine)!r}"
            runner, settings = _engine_backend(engine, transform, gpu)
        localizer = cls(runner, frontend=frontend, max_pixels=max_pixels, **settings)
        localizer.source = source
        return localizer

    @classmethod
    def from_model(cls, model, device: str = "cpu", transform: str = "stretch",
                   max_pixels: int | None = MAX_PIXELS) -> "Localizer":
        """Wrap an in-memory AVNet (InputError naming ``model`` when its weights hold NaN/Inf)."""
        bad = _nonfinite_weights(model)
        if bad:
            raise bad_input("model", "a model whose weights are finite",
                            f"one with NaN or Inf in {', '.join(bad[:3])}", described=True)
        config = getattr(model, "config", None)
        transform = canonical_transform(transform)
        return cls(TorchBackend(model, device), transform=transform, audio=getattr(model, "audio_spec", None),
                   max_pixels=max_pixels, image_size=getattr(config, "image_size", 224))

    @classmethod
    def load_sacl(cls, frame_path, sound_path, device: str = "cpu",
                  max_pixels: int | None = MAX_PIXELS) -> "Localizer":
        """The released SACL checkpoint pair (visual ResNet-18 and audio net state_dicts)."""
        from avsdk.models import load_sacl_pair

        model = load_sacl_pair(frame_path, sound_path)
        _check_finite_weights(model, f"SACL weights {os.fspath(frame_path)!r} + {os.fspath(sound_path)!r}")
        return cls(TorchBackend(model, device), transform="stretch", max_pixels=max_pixels)

    @classmethod
    def load_sspl(cls, frame_path, sound_path, pcm_path=None, device: str = "cpu",
                  max_pixels: int | None = MAX_PIXELS) -> "Localizer":
        """SSPL checkpoints as the reference saves them (with the PCM if ``pcm_path`` is given)."""
        from avsdk.models import load_sspl

        model = load_sspl(frame_path, sound_path, pcm_path)
        _check_finite_weights(model, f"SSPL weights {os.fspath(frame_path)!r} + {os.fspath(sound_path)!r}")
        return cls(TorchBackend(model, device), transform="centre_crop", max_pixels=max_pixels)

    # -- inference ---------------------------------------------------------------------
    def predict(self, frames, log_mel) -> np.ndarray:
        """Batched raw maps: frames [B, 3, S, S], log_mel [B, N, 1, 96, 64] -> [B, h, w]."""
        if len(frames) != len(log_mel):  # a fixed-batch runner would drop the extra items
            raise bad_input("log_mel", f"a batch of {len(frames)} to match frames", log_mel)
        expected = f"maps of shape [{len(frames)}, h, w]"
        try:
            maps = np.asarray(self.backend(frames, log_mel), dtype=np.float32)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, AvsdkError):  # the backend's own check of its inputs
                raise
            raise self._model_error(expected, f"something numpy cannot read as float32 ({exc})") from None
        if maps.ndim != 3 or maps.shape[0] != len(frames) or 0 in maps.shape:
            raise self._model_error(expected, maps)
        if not np.isfinite(maps).all():
            for name, value in (("frames", frames), ("log_mel", log_mel)):
                if not _all_finite(value):
                    raise bad_input(name, "finite values", "an array holding NaN or Inf", described=True)
            raise self._model_error("maps of finite values",
                                    f"maps holding {int((~np.isfinite(maps)).sum())} NaN or Inf of {maps.size}")
        return maps

    def _model_error(self, expected: str, received) -> AvsdkError:
        """What the model returned is wrong: an InputError naming ``backend`` when the caller
        gave it, else a CheckpointError naming the model file."""
        if self.source is None:
            return bad_input("backend", expected, received, described=isinstance(received, str))
        got = received if isinstance(received, str) else _describe(received)
        return CheckpointError(f"{self.source} returned {got}, expected {expected}: it is not an avsdk "
                               "localization model, or a broken one")

    @property
    def preprocessing(self):
        """The model's preprocessing (avsdk.manifest.Preprocessing, as an export's manifest
        records it): transform, image size, audio input, clip length."""
        from avsdk.manifest import Preprocessing

        examples = self.audio.item_shape(self.clip_seconds)[0] if self.audio.kind == "log_mel" else 3
        return Preprocessing(sample_rate=self.audio.sample_rate, clip_seconds=self.clip_seconds,
                             examples=examples, audio=self.audio.kind, image_size=self.image_size,
                             transform=self.transform)

    def inputs(self, frame, audio, sample_rate: int | None = None, start: float | None = None):
        """The model's inputs of (frame, audio), an avsdk.preprocess.ModelInputs: ``frame``
        float32 [3, S, S], ``audio`` the graph's audio input (log_mel [N, 1, 96, 64] or waveform
        [T], see avsdk.audio_input), the frame's ``size``, the heard ``window`` and its ``clip``
        (``level_db()``, the visibility cue); arguments as ``__call__``."""
        from avsdk.preprocess import model_inputs

        return model_inputs(frame, audio, sample_rate, self.preprocessing, start, self.frontend, self.max_pixels)

    def __call__(self, frame, audio, sample_rate: int | None = None, start: float | None = None
                 ) -> LocalizationResult:
        """Localize the sound in one frame.

        Args:
            frame: image path or binary file object, PIL image, or array [H, W, 3] (uint8, or
                float in [0, 1]), of at most ``max_pixels`` pixels.
            audio: sound file path or file object, or waveform array [T] / [T, channels].
            sample_rate: Hz; required when ``audio`` is an array, not allowed with a path.
            start: seconds into the sound where the ``clip_seconds`` the model hears begin, in
                [0, duration - clip_seconds]; None (default) for the centre ones. A sound no
                longer than the clip is heard whole, tiled, and takes only None or 0.
        Returns:
            LocalizationResult at the frame's original size; its ``window`` is the heard
            (start, end) in seconds of ``audio``.
        Raises:
            InputError: unreadable or malformed frame or audio, a frame of more than
                ``max_pixels`` pixels, missing sample_rate, a ``start`` outside the sound.
            CheckpointError: the loaded model returned no valid maps (NaN, wrong shape).
        """
        return self._localize(frame, audio, sample_rate, start)

    def _localize(self, frame, audio, sample_rate, start, offset: float = 0.0) -> LocalizationResult:
        """__call__, the window reported ``offset`` seconds later (where ``audio`` begins in a video)."""
        x = self.inputs(frame, audio, sample_rate, start)
        similarity = self.predict(x.frame[None], x.audio[None])[0]
        on_screen = None
        if self.visibility is not None:
            from avsdk.visibility import map_features

            on_screen = self.visibility.probability(map_features(similarity, x.level_db()))
        window = (offset + x.window[0], offset + x.window[1])
        return result_from_similarity(similarity, x.size[0], x.size[1], self.transform, on_screen, window)

    def localize_video(self, path: str | os.PathLike, time: float | None = None) -> LocalizationResult:
        """Localize in the frame of a video at ``time`` seconds (default: the middle), with the
        ``clip_seconds`` of its soundtrack centred on that moment (``window`` in seconds of the
        video). Needs PyAV (extra "video")."""
        from avsdk.video import read_clip

        if not isinstance(path, (str, os.PathLike)):
            raise bad_input("path", "a video file path", path)
        return self._localize_clip(read_clip(path, time=time, clip_seconds=self.clip_seconds))

    def _localize_clip(self, clip) -> LocalizationResult:
        """Localize an avsdk.video.VideoClip read with this model's clip_seconds, ``window`` in
        seconds of the video."""
        sound_begins = max(0.0, clip.time - self.clip_seconds / 2.0)  # as read_clip cuts it
        return self._localize(clip.frame, clip.audio, clip.sample_rate, None, offset=sound_begins)

    def stream(self, source, *, audio=None, format: str | None = None, options: dict | None = None,
               every: float | None = None, fps: float | None = None, batch_size: int = 1,
               smoothing: float | None = None):
        """Localize in the frames of a video file, a live source (camera, URL) or an
        avsdk.stream.PushSource as they come: an iterator of avsdk.stream.StreamResult (its
        ``time``, ``result`` and ``dropped``). Arguments and rules: avsdk.stream.stream and
        docs/streams.md."""
        from avsdk.stream import stream

        return stream(self, source, audio=audio, format=format, options=options, every=every, fps=fps,
                      batch_size=batch_size, smoothing=smoothing)

"""Fast mode: run the frozen visual trunk once per image and view, train the rest on the cache.

With a frozen trunk (the edge model's EfficientNet-Lite0), the trunk's output for a given
input never changes, and it is by far the most expensive part of a step on a CPU. So each
training image is turned into a fixed pool of ``fast_views`` views:

    view 0: the evaluation view (resize to 224x224, what the model sees at test time)
    view 1: its horizontal mirror
    view 2+: random training views of the scheme (SACL: resize 246, random crop, flip,
             colour jitter, grayscale, blur; SSPL: geometry only), seeded

Each is passed through the trunk once and kept as float16 ([C, 14, 14], C = 1280 for
EfficientNet-Lite0: 0.5 MB per view), together with the view's Felzenszwalb segment ids
(14x14) and the clip's log-mel examples: in RAM (FeatureCache), or, when training on shards,
on disk, one folder per shard (avsdk.training.feature_cache). The views and segments are made
in DataLoader workers (``num_workers``), the trunk runs in the calling process. Every step
then draws, per clip, two different views from its pool; the projection, audio network, PCM
and heads train exactly as in full mode.

What this approximates: full mode draws fresh random views every epoch, the fast mode
re-uses a finite pool (``fast_views`` per image) for the whole run, and features pass
through float16 (relative error ~1e-3) before the trainable 1x1 projection. Nothing else
changes: same losses, same positive masks, same false-negative removal, same batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from avsdk.errors import bad_input

from .augment import ViewParams, apply_view, sample_view
from .data import MAP_SIZE, clip_audio, open_frame
from .segmentation import nearest_resize, pseudo_segmentation


@dataclass
class FeatureCache:
    """Per clip: trunk features of each view, the views' segment ids, and the audio: the
    log-mel examples, or, for a model whose audio backbone is frozen (SoundNet), that
    backbone's embedding of each audio view (``audio_embedded``)."""

    features: torch.Tensor  # float16 [n, V, C, 14, 14]
    segments: torch.Tensor | None  # int16 [n, V, 14, 14], None when not segmented
    log_mel: torch.Tensor  # float32 [n, N, 1, 96, 64], or embeddings [n, A, D] when audio_embedded
    audio_embedded: bool = False

    def audio(self, index: torch.Tensor) -> torch.Tensor:
        """The audio of clips ``index`` as heard at evaluation: the log-mel, or the embedding of
        the clip itself (audio view 0)."""
        return self.log_mel[index, 0] if self.audio_embedded else self.log_mel[index]

    def plan(self, indices: Sequence[int], rng: np.random.Generator) -> BatchPlan:
        return plan_batch(indices, rng, self.features.shape[1], self.log_mel.shape[1] if self.audio_embedded else 0)

    def gather(self, plan: BatchPlan):
        """The planned batch: (f1, f2 [B, C, 14, 14] float16 as cached (half the bytes to move;
        the caller converts them on its device), seg1, seg2 or None, audio)."""
        index, first, second = (torch.as_tensor(v) for v in (plan.index, plan.first, plan.second))
        f1, f2 = self.features[index, first], self.features[index, second]
        seg1 = seg2 = None
        if self.segments is not None:
            seg1, seg2 = self.segments[index, first].long(), self.segments[index, second].long()
        audio = self.log_mel[index] if plan.audio is None else self.log_mel[index, torch.as_tensor(plan.audio)]
        return f1, f2, seg1, seg2, audio

    def batch(self, indices: Sequence[int], rng: np.random.Generator):
        """Two different cached views per clip: (f1, f2 [B, C, 14, 14] float16, seg1, seg2, audio)."""
        return self.gather(self.plan(indices, rng))


@dataclass(frozen=True)
class BatchPlan:
    """What a training batch takes from a cache: its clips, two different views of each, and,
    for cached audio embeddings, the audio view of each (None: the clip's log-mel)."""

    index: np.ndarray
    first: np.ndarray
    second: np.ndarray
    audio: np.ndarray | None


def plan_batch(indices: Sequence[int], rng: np.random.Generator, views: int, audio_views: int = 0) -> BatchPlan:
    """Draw a batch's views from ``rng``: two different ones of ``views`` per clip, then an
    audio view of ``audio_views`` (0: none to draw)."""
    index = np.asarray(list(indices))
    first, second = pick_views(rng, len(index), views)
    audio = rng.integers(0, audio_views, size=len(index)) if audio_views else None
    return BatchPlan(index, first, second, audio)


class PlannedBatches(torch.utils.data.Dataset):
    """The planned batches of an epoch, gathered from ``cache`` (a DataLoader with workers reads
    them ahead of the steps; ``batch_size=None``)."""

    def __init__(self, cache, plans: Sequence[BatchPlan]):
        self.cache, self.plans = cache, plans

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, i: int):
        return self.cache.gather(self.plans[i])


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def pick_views(rng: np.random.Generator, clips: int, views: int) -> tuple[np.ndarray, np.ndarray]:
    """Two different view numbers in [0, views) for each of ``clips`` clips."""
    first = rng.integers(0, views, size=clips)
    return first, (first + rng.integers(1, views, size=clips)) % views  # never the same view


def _view_pool(frame, labels, count: int, scheme: str, rng: np.random.Generator, size: int = 224):
    """The fixed views of one image: [(tensor [3, S, S], labels [S, S] or None)], S = ``size``
    for the evaluation view and its mirror, 224 for the random training views."""
    views = [apply_view(frame, labels, ViewParams(0, 0, flip), "sacl", resize=size, crop=size)
             for flip in (False, True)]
    views += [apply_view(frame, labels, sample_view(rng, frame.size, scheme), scheme) for _ in range(count - 2)]
    return views[:count]


class ItemViews(torch.utils.data.Dataset):
    """The CPU half of the cache, one sample at a time (so that DataLoader workers share it):
    item ``i`` -> (views float32 [V, 3, S, S], segment ids int16 [V, 14, 14] (empty when not
    segmented), the log-mel examples (empty for a frozen audio backbone)), its random views
    drawn from ``np.random.default_rng(keys[i])``."""

    def __init__(self, samples: Sequence, keys: Sequence[tuple], views: int, scheme: str, segment: bool,
                 segment_size: int, size: int, audio_spec=None):
        self.samples, self.keys, self.views, self.scheme = samples, keys, views, scheme
        self.segment, self.segment_size, self.size, self.audio_spec = segment, segment_size, size, audio_spec

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        frame = open_frame(self.samples[i])
        ids = pseudo_segmentation(frame, self.segment_size) if self.segment else None
        pool = _view_pool(frame, ids, self.views, self.scheme, np.random.default_rng(self.keys[i]), self.size)
        frames = torch.stack([tensor for tensor, _ in pool])
        segments = (torch.stack([nearest_resize(torch.from_numpy(v), MAP_SIZE) for _, v in pool]).to(torch.int16)
                    if self.segment else torch.empty(0))
        log_mel = clip_audio(self.samples[i], self.audio_spec) if self.audio_spec is not None else torch.empty(0)
        return frames, segments, log_mel


@torch.no_grad()
def feature_batches(model, samples: Sequence, keys: Sequence[tuple], views: int, scheme: str, segment: bool,
                    segment_size: int = 256, size: int = 224, batch_images: int = 16, num_workers: int = 0,
                    progress: bool = True, desc: str | None = None, bar=None) -> Iterator[tuple]:
    """The cache of ``samples`` batch by batch, in order: (trunk features float16 [b, V, C, 14, 14],
    segment ids int16 [b, V, 14, 14] or None, log-mel [b, N, 1, 96, 64] or None for a frozen
    audio backbone). Views and Felzenszwalb run in ``num_workers`` DataLoader workers (the CPU
    half of the work), the trunk here. ``bar``: a tqdm bar counting images, updated instead of
    a bar of its own."""
    trunk = model.visual_trunk.eval()
    device = next(model.parameters()).device
    spec = None if model.audio_spec.kind == "waveform" else model.audio_spec
    dataset = ItemViews(samples, keys, views, scheme, segment, segment_size, size, spec)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_images, num_workers=num_workers)
    if progress and bar is None:
        from tqdm import tqdm

        loader = tqdm(loader, desc=desc or f"cache trunk features ({plural(views, 'view')})", unit="batch")
    for frames, segments, log_mel in loader:
        if bar is not None:
            bar.update(len(frames))
        # channels_last runs the depthwise convolutions of EfficientNet ~2.5x faster on CPU
        batch = frames.flatten(0, 1).to(device).contiguous(memory_format=torch.channels_last)
        out = trunk(batch).to("cpu", torch.float16).contiguous()
        yield (out.view(len(frames), views, *out.shape[1:]), segments if segment else None,
               log_mel if spec is not None else None)


def build_cache(model, samples: Sequence, views: int, scheme: str, seed: int, segment: bool = True,
                segment_size: int = 256, batch_images: int = 16, progress: bool = True,
                audio_views: int = 1, size: int = 224, num_workers: int = 0) -> FeatureCache:
    """Run ``model.visual_trunk`` over ``views`` views of every sample (see module doc), in RAM.

    Args:
        model: an AVNet whose trunk is frozen.
        samples: avsdk.datasets.Sample list.
        views: views per image (>= 1; view 0 is the evaluation view).
        segment: compute the Felzenszwalb ids (SACL needs them, SSPL does not).
        segment_size: side of the image Felzenszwalb sees (256 as the reference).
        audio_views: for a frozen audio backbone (SoundNet), embeddings cached per clip:
            the clip itself and ``audio_views - 1`` augmented views (training.audio_augment).
        size: side of the evaluation view (the model's ``config.image_size`` for a validation
            cache); the random views are 224, so a size other than 224 allows at most 2 views.
        num_workers: DataLoader workers that make the views and segments (0: this process).
    """
    check_views(views, size)
    features, segments, log_mels = [], [], []
    for out, ids, log_mel in feature_batches(model, samples, [(seed, i) for i in range(len(samples))], views,
                                             scheme, segment, segment_size, size, batch_images, num_workers,
                                             progress):
        features.append(out)
        segments.append(ids)
        log_mels.append(log_mel)
    embedded = model.audio_spec.kind == "waveform"
    audio = (audio_embeddings(model, samples, audio_views, (seed, 7), batch_images, progress) if embedded
             else torch.cat(log_mels))
    return FeatureCache(
        features=torch.cat(features),
        segments=torch.cat(segments) if segment else None,
        log_mel=audio,
        audio_embedded=embedded,
    )


def check_views(views: int, size: int) -> None:
    if size != 224 and views > 2:
        raise bad_input("views", f"at most 2 with size={size} (the random views are 224x224)", views)


def audio_embeddings(model, samples: Sequence, views: int, key: tuple, batch: int, progress: bool) -> torch.Tensor:
    """The frozen audio backbone's embedding of ``views`` views of every clip, float32 [n, A, D]
    (the views drawn from ``np.random.default_rng(key)``; mixes take other clips of ``samples``)."""
    from avsdk.audio import load_audio, to_mono_16k
    from avsdk.audio_input import audio_input

    from .audio_augment import audio_view

    clips = [to_mono_16k(*load_audio(s.audio)) for s in samples]
    rng = np.random.default_rng(key)
    device = next(model.parameters()).device
    starts = range(0, len(clips), batch)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"cache audio embeddings ({plural(views, 'view')})", unit="batch")
    out = []
    for start in starts:  # a chunk of clips at a time: the waveforms of every view never all sit in memory
        inputs = []
        for i in range(start, min(start + batch, len(clips))):
            others = [clips[j] for j in rng.integers(0, len(clips), size=4) if samples[j].label != samples[i].label]
            waves = [clips[i]] + [audio_view(clips[i], others, rng) for _ in range(views - 1)]
            inputs += [audio_input(w, 16000, model.audio_spec) for w in waves]
        out.append(model.audio_net.embed(torch.as_tensor(np.stack(inputs)).to(device)).float().cpu())
    return torch.cat(out).view(len(samples), views, -1)


@torch.no_grad()
def cached_maps(objective, cache: FeatureCache, batch_size: int = 64) -> np.ndarray:
    """Raw similarity maps [n, h, w] of view 0 (the evaluation view) of every cached clip,
    as the model's forward computes them."""
    model = objective.model
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    maps = []
    for start in range(0, cache.features.shape[0], batch_size):
        v = model.project(cache.features[start : start + batch_size, 0].to(device).float())
        index = torch.arange(start, min(start + batch_size, cache.features.shape[0]))
        emb, a = model.audio_features(cache.audio(index).to(device), embedded=cache.audio_embedded)
        v = model.refine(v, emb)
        maps.append(model.similarity_map(v, a).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(maps)

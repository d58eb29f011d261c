"""Training data: per-clip inputs, class-grouped batches, and the full-mode view dataset."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from .augment import train_views
from .segmentation import nearest_resize, pseudo_segmentation

MAP_SIZE = (14, 14)  # the visual maps of every supported trunk at 224x224


def clip_audio(sample, spec=None) -> torch.Tensor:
    """A sample's sound as the model's audio input (avsdk.preprocess, as the Localizer hears it):
    VGGish log-mel examples float32 [N, 1, 96, 64] by default, or the waveform [T] for a
    waveform spec."""
    from avsdk.audio_input import AudioSpec
    from avsdk.preprocess import Preprocessing, audio_array

    spec = spec or AudioSpec()
    if hasattr(sample, "model_audio"):  # a shard record (training.shard_data) holds it preprocessed
        return torch.from_numpy(sample.model_audio(spec))
    preprocessing = Preprocessing(sample_rate=spec.sample_rate, audio=spec.kind)
    return torch.from_numpy(audio_array(sample.audio, preprocessing=preprocessing)[0])


def open_frame(sample) -> Image.Image:
    from avsdk.frames import load_frame

    return Image.fromarray(load_frame(sample.image))


class GroupedBatches:
    """Batches that hold several clips of one class: the false-negative situation SACL targets.

    Each epoch the clips of every class are shuffled and cut into groups of
    ``clips_per_class``; the groups are shuffled and concatenated into batches of
    ``batch_size`` (the last partial batch is dropped, as the reference's drop_last). With
    ``clips_per_class`` 0 it is a plain shuffle. Under DistributedDataParallel each of the
    ``world`` processes takes every world-th batch, of the largest multiple of ``world``
    batches: every process runs the same number of steps (their gradients are exchanged at
    each one), as DistributedSampler with drop_last. ``limit``: at most this many batches
    (processes that hold their own clips, from shards, run as many steps as the one holding fewest).
    """

    def __init__(self, labels: Sequence, batch_size: int, clips_per_class: int, seed: int,
                 rank: int = 0, world: int = 1, limit: int | None = None):
        self.labels = list(labels)
        self.batch_size, self.clips_per_class = batch_size, clips_per_class
        self.seed, self.rank, self.world, self.limit = seed, rank, world, limit
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.clips_per_class <= 1:
            return [int(i) for i in rng.permutation(len(self.labels))]
        groups = []
        for label in sorted(set(self.labels), key=str):
            members = [i for i, value in enumerate(self.labels) if value == label]
            members = [members[i] for i in rng.permutation(len(members))]
            groups += [members[i : i + self.clips_per_class] for i in range(0, len(members), self.clips_per_class)]
        return [i for g in rng.permutation(len(groups)) for i in groups[g]]

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order()
        batches = [order[i : i + self.batch_size] for i in range(0, len(order) - self.batch_size + 1, self.batch_size)]
        return iter(batches[: len(self) * self.world][self.rank :: self.world])

    def __len__(self) -> int:
        batches = len(self.labels) // self.batch_size // self.world
        return batches if self.limit is None else min(batches, self.limit)


class ViewsDataset(torch.utils.data.Dataset):
    """Full mode: two fresh augmented views per clip and per epoch.

    Item: {"frame1", "frame2": [3, 224, 224], "seg1", "seg2": int64 [14, 14] (the view's
    Felzenszwalb ids, nearest-resized), "log_mel": [N, 1, 96, 64] (or the model's waveform
    input [T]), "index": int}.
    Segments and log-mels are computed once per clip and kept (per worker process).
    """

    def __init__(self, samples: Sequence, scheme: str, seed: int, segment: bool = True, segment_size: int = 256,
                 audio=None):
        self.samples, self.scheme, self.seed, self.segment = list(samples), scheme, seed, segment
        self.audio = audio  # the model's AudioSpec (None: log-mel)
        self.segment_size = segment_size
        self.epoch = 0
        self._segments: dict[int, np.ndarray] = {}
        self._log_mels: dict[int, torch.Tensor] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        frame = open_frame(sample)
        labels = None
        if self.segment:
            if index not in self._segments:
                self._segments[index] = pseudo_segmentation(frame, self.segment_size)
            labels = self._segments[index]
        if index not in self._log_mels:
            self._log_mels[index] = clip_audio(sample, self.audio)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        (frame1, seg1), (frame2, seg2) = train_views(frame, labels, rng, self.scheme)
        item = {"frame1": frame1, "frame2": frame2, "log_mel": self._log_mels[index], "index": index}
        if self.segment:
            item["seg1"] = nearest_resize(torch.from_numpy(seg1).long(), MAP_SIZE)
            item["seg2"] = nearest_resize(torch.from_numpy(seg2).long(), MAP_SIZE)
        return item

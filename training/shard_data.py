"""Reading shards (avsdk.training.shards): a DataLoader over them, split between torchrun's
processes and each loader's workers, and the records a training run keeps in memory.

    loader = shard_loader("shards/", batch_size=64, num_workers=4)
    for batch in loader:
        batch["frame"]    # uint8 [B, S, S, 3], the frame at the training size
        batch["audio"]    # float32 [B, ...]: the model's audio input, or the 16 kHz clip
        batch["label"], batch["key"]    # lists of str ("" for no label)

    records = load_records("shards/", rank, world)   # training: this process's shards, in RAM

Under ``torchrun`` each process reads its own shards (every world-th, from its rank), and
each DataLoader worker its own share of those (webdataset's split_by_node, split_by_worker):
no sample is read twice in an epoch. Processes get shards, not samples, so their sample
counts differ by up to a shard's; a training run equalises the steps (training.train).
Only complete shards (with their sidecar) are read.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsdk.errors import bad_input, require
from avsdk.preprocess import Preprocessing

AUDIO_FIELDS = ("log_mel.npy", "waveform.npy", "clip.npy")


def complete_shards(folder: str | os.PathLike) -> list[Path]:
    """The shards of ``folder`` that were written whole (their sidecar exists), in order.

    Raises:
        InputError: naming ``shards`` when the folder holds no plan.json (no shards were written).
    """
    folder = Path(folder)
    if not (folder / "plan.json").is_file():
        raise bad_input("shards", "a folder written by avsdk.training.shards (with plan.json)", str(folder))
    return sorted(p for p in folder.glob("shard-*.tar") if p.with_suffix(".json").is_file())


def shard_preprocessing(folder: str | os.PathLike) -> Preprocessing:
    """The Preprocessing the shards of ``folder`` were written with."""
    plan = json.loads((Path(folder) / "plan.json").read_text())
    return Preprocessing.from_json(plan["config"]["read"]["preprocessing"])


def decode(sample: dict) -> dict:
    """A raw WebDataset sample (extension -> bytes) -> {"key", "frame" uint8 [S, S, 3], "audio"
    float32, "audio_kind" ("log_mel" | "waveform" | "clip"), "meta" dict, "mask" PNG bytes or None}."""
    from PIL import Image

    if "jpg" in sample:
        frame = np.asarray(Image.open(io.BytesIO(sample["jpg"])).convert("RGB"))
    else:
        frame = _array(sample["frame.npy"])
    field = next(f for f in AUDIO_FIELDS if f in sample)
    return {"key": sample["__key__"], "frame": frame, "audio": _array(sample[field]),
            "audio_kind": field.split(".")[0], "meta": json.loads(sample["json"]), "mask": sample.get("mask.png")}


def _array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def shard_dataset(folder: str | os.PathLike, shuffle: int = 0, seed: int = 0):
    """An IterableDataset of decoded samples (:func:`decode`) of the complete shards of
    ``folder``: split by torchrun process, then by DataLoader worker; ``shuffle``: a buffer of
    that many samples shuffled (0: shard order), with the shards' order shuffled too."""
    wds = require("webdataset", "data", "reading WebDataset shards")
    urls = [str(p) for p in complete_shards(folder)]
    dataset = wds.WebDataset(urls, nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker,
                             shardshuffle=len(urls) if shuffle else False, seed=seed, empty_check=False)
    if shuffle:
        dataset = dataset.shuffle(shuffle)
    return dataset.map(decode)


def shard_loader(folder: str | os.PathLike, batch_size: int, num_workers: int = 0, shuffle: int = 0,
                 seed: int = 0):
    """A torch DataLoader of batches {"frame": uint8 [B, S, S, 3], "audio": float32 [B, ...],
    "label": [str], "key": [str]} over the shards of ``folder`` (see :func:`shard_dataset`);
    the last batch of each worker may be short."""
    import torch

    dataset = shard_dataset(folder, shuffle, seed).map(
        lambda s: {"frame": torch.from_numpy(s["frame"]), "audio": torch.from_numpy(s["audio"]),
                   "label": s["meta"]["label"] or "", "key": s["key"]})
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)


@dataclass(frozen=True, eq=False)
class ShardRecord:
    """One stored pair, as a training sample: ``image`` and ``label`` as avsdk.datasets.Sample,
    and the audio as stored (training.data.clip_audio asks ``model_audio``)."""

    key: str
    label: str | None
    frame: bytes | np.ndarray  # JPEG bytes, or uint8 [S, S, 3]
    stored_audio: np.ndarray  # the model's audio input, or the 16 kHz clip
    audio_kind: str  # "log_mel" | "waveform" | "clip"
    preprocessing: Preprocessing  # the shards'
    meta: dict

    @property
    def image(self):
        """What avsdk.frames.load_frame reads: a JPEG file object, or the pixels."""
        return io.BytesIO(self.frame) if isinstance(self.frame, bytes) else self.frame

    @property
    def audio(self):
        """The heard window as a WAV file object (avsdk.audio.load_audio), for --audio clip shards."""
        if self.audio_kind != "clip":
            raise bad_input("shards", "shards written with --audio clip (this model needs the waveform)",
                            f"shards holding the {self.audio_kind} input only", described=True)
        import soundfile

        buffer = io.BytesIO()
        soundfile.write(buffer, self.stored_audio, 16000, format="WAV", subtype="FLOAT")
        buffer.seek(0)
        return buffer

    def model_audio(self, spec) -> np.ndarray:
        """The model's audio input for ``spec`` (avsdk.audio_input.AudioSpec), float32: as stored
        when the shards hold it, else made from the stored clip (avsdk.preprocess)."""
        from avsdk.preprocess import audio_array

        wanted = Preprocessing(sample_rate=spec.sample_rate, audio=spec.kind)  # training.data.clip_audio's
        if self.audio_kind == "clip":
            return audio_array(self.stored_audio, 16000, wanted)[0]
        held = self.preprocessing
        same = (held.audio, held.sample_rate, held.clip_seconds, held.examples) == (
            wanted.audio, wanted.sample_rate, wanted.clip_seconds, wanted.examples)
        if not same:
            raise bad_input("shards", f"shards of the model's audio input ({wanted.audio} at {wanted.sample_rate} Hz, "
                            f"{wanted.clip_seconds:g} s), or written with --audio clip",
                            f"{held.audio} at {held.sample_rate} Hz, {held.clip_seconds:g} s", described=True)
        return self.stored_audio


def load_records(folder: str | os.PathLike, rank: int = 0, world: int = 1) -> list[ShardRecord]:
    """The pairs of every ``world``-th complete shard from the ``rank``-th, in key order, with
    frames kept encoded (a 224 px JPEG is ~15 KB; decoded when a view is made).

    Raises:
        InputError: naming ``shards``: no shards there, or fewer shards than processes.
    """
    shards = complete_shards(folder)
    if len(shards) < world:
        raise bad_input("shards", f"at least one complete shard per process ({world})",
                        f"{str(folder)!r} with {len(shards)}", described=True)
    preprocessing = shard_preprocessing(folder)
    records = [r for shard in shards[rank::world] for r in shard_records(shard, preprocessing)]
    return sorted(records, key=lambda r: r.key)


def shard_records(shard: str | os.PathLike, preprocessing: Preprocessing | None = None) -> list[ShardRecord]:
    """The pairs of one shard, in key order (``preprocessing``: the shards', read from the
    folder's plan.json when not given)."""
    wds = require("webdataset", "data", "reading WebDataset shards")
    shard = Path(shard)
    preprocessing = preprocessing or shard_preprocessing(shard.parent)
    records = []
    for sample in wds.WebDataset([str(shard)], nodesplitter=None, workersplitter=None, shardshuffle=False,
                                 empty_check=False):
        meta = json.loads(sample["json"])
        field = next(f for f in AUDIO_FIELDS if f in sample)
        frame = sample["jpg"] if "jpg" in sample else _array(sample["frame.npy"])
        records.append(ShardRecord(sample["__key__"], meta["label"], frame, _array(sample[field]),
                                   field.split(".")[0], preprocessing, meta))
    return sorted(records, key=lambda r: r.key)

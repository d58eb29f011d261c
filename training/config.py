"""TrainConfig: everything one training run needs, as a frozen dataclass the CLI fills."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from avsdk.errors import bad_input
from avsdk.models import ModelConfig

SCHEMES = ("sacl", "sspl")
MODES = ("fast", "full")
POSITIVE_REGIONS = ("segments", "map")
# model selection on val: the scores compared, in order ("ciou": the papers' cIoU@0.5 under the
# >= 0.5 rule, then AUC; "auc": AUC, then the pointing game, for models whose cIoU@0.5 stays
# near 0 so that it would pick an epoch by noise)
SELECTIONS = {"ciou": ("ciou", "auc"), "auc": ("auc", "pointing")}


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    ``mode="full"`` is the faithful pipeline: fresh augmented views every step, every
    trainable part of the model in the graph. ``mode="fast"`` (frozen visual trunk only)
    runs the trunk once per image and per cached view, keeps the features in RAM as
    float16, and trains the rest on them; see ``avsdk.training.fast``.
    """

    data: str  # benchmark root (avsdk.datasets.build_benchmark output)
    out: str  # output folder: best.pt, last.pt, history.json
    scheme: str = "sacl"  # "sacl" | "sspl"
    mode: str = "full"  # "full" | "fast"
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 20
    batch_size: int = 64  # per process, as the reference's batch_size_per_gpu
    clips_per_class: int = 4  # same-class clips kept together in a batch (0: plain shuffle)
    lr: float = 2e-4  # SACL: every trainable parameter (reference lr_frame = lr_sound)
    lr_audio: float = 2e-5  # SSPL: audio head
    lr_pcm: float = 2e-5  # SSPL: PCM (and the edge model's 1x1 projection)
    lr_head: float = 5e-5  # SSPL: SimSiam projector + predictor
    weight_decay: float = 1e-4
    tau: float = 0.005
    negative_ratio: float = 0.75
    remove_false_negatives: bool = True  # False: plain InfoNCE over every other clip
    retain: float = 0.5  # fraction of positions below the binarisation threshold
    fast_views: int = 4  # fast mode: cached views per image (eval view, its flip, random views)
    fast_audio_views: int = 4  # fast mode, frozen audio backbone (SoundNet): cached audio views per clip
    positive_region: str = "segments"  # SACL: "segments" (Felzenszwalb, the reference) | "map" (binarised map alone)
    segment_size: int = 256  # side of the Felzenszwalb input; 256 is the reference, fast runs may use 128
    seed: int = 0
    device: str = "cpu"
    eval_every: int = 1  # epochs between validation runs (model selection on val, see ``select``)
    select: str = "ciou"  # which val scores pick best.pt: a key of SELECTIONS
    val_limit: int = 0  # use at most this many val samples (0: all)
    num_workers: int = 0
    max_steps: int = 0  # stop after this many optimiser steps (0: no limit), for smoke runs; the
    # epoch it stops in counts as done (a resumed run goes on with the next one)
    resume: bool = False  # continue the run in out from its last.pt, which must exist (same settings but epochs)
    overwrite: bool = False  # start over in an out folder that holds a run (best.pt / last.pt)
    progress: bool = True
    # train on these shards (avsdk.training.shards), each process on its own, instead of data's train
    # split (val stays data's); None, not "", so that a run saved before this field resumes
    shards: str | None = None
    # fast mode on shards: where each shard's trunk features are cached (avsdk.training.feature_cache);
    # None: <shards>/features
    feature_cache: str | None = None
    # torchrun: how long a process waits for the others at a collective. Long, because the first
    # one waits for every process's feature cache, which may take hours on some and none on others
    dist_timeout_minutes: int = 360

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise bad_input("scheme", f"one of {SCHEMES}", self.scheme)
        if self.positive_region not in POSITIVE_REGIONS:
            raise bad_input("positive_region", f"one of {POSITIVE_REGIONS}", self.positive_region)
        if self.select not in SELECTIONS:
            raise bad_input("select", f"one of {tuple(SELECTIONS)}", self.select)
        if self.mode not in MODES:
            raise bad_input("mode", f"one of {MODES}", self.mode)
        if self.feature_cache is not None and not (self.shards and self.mode == "fast"):
            raise bad_input("feature_cache", "None unless training on shards in fast mode (it caches their "
                            "features)", self.feature_cache)
        if self.resume and self.overwrite:
            raise bad_input("overwrite", "either resume (continue the run in out) or overwrite (start it over)",
                            "both", described=True)
        from avsdk.localizer import torch_device

        torch_device(self.device)  # torch's own error would be a RuntimeError or an assertion
        if not isinstance(self.model, ModelConfig):
            raise bad_input("model", "a ModelConfig", self.model)
        if self.mode == "fast" and not self.model.freeze_visual:
            raise bad_input("mode", "'full' when the visual trunk is fine-tuned (fast caches its features)", self.mode)
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise bad_input("batch_size", "an int >= 2 (contrast / BatchNorm over the batch)", self.batch_size)
        for name in ("epochs", "eval_every", "fast_views", "fast_audio_views", "segment_size", "dist_timeout_minutes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise bad_input(name, "a positive int", value)
        if self.segment_size < 16:
            raise bad_input("segment_size", "an int >= 16 (256 as the reference)", self.segment_size)
        if self.fast_views < 2:
            raise bad_input("fast_views", "at least 2 (two views per step)", self.fast_views)
        for name in ("clips_per_class", "val_limit", "num_workers", "max_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise bad_input(name, "an int >= 0", value)
        for name in ("lr", "lr_audio", "lr_pcm", "lr_head", "tau"):
            if not _real(getattr(self, name)) or not 0 < getattr(self, name) < math.inf:
                raise bad_input(name, "a finite float > 0", getattr(self, name))
        if not _real(self.weight_decay) or not 0 <= self.weight_decay < math.inf:
            raise bad_input("weight_decay", "a finite float >= 0", self.weight_decay)
        # int(negative_ratio * B) negatives are kept, all of them at 1; binarize() thresholds at
        # sorted position int(retain * HW), which exists only for retain < 1
        if not _real(self.negative_ratio) or not 0 <= self.negative_ratio <= 1:
            raise bad_input("negative_ratio", "a fraction in [0, 1]", self.negative_ratio)
        if not _real(self.retain) or not 0 <= self.retain < 1:
            raise bad_input("retain", "a fraction in [0, 1)", self.retain)

    @classmethod
    def published(cls, scheme: str, data: str, out: str, *, pcm: bool = True, **overrides):
        """The configuration of the published method's reference training, per process.

        SACL (zjsong/SACL; docs/method.md, "SACL loss"): ResNet-18 + VGGish fine-tuned, AdamW
        lr 2e-4, wd 1e-4, tau 0.005, 100 epochs, 64 clips per process on 4 GPUs
        (``torchrun --nproc_per_node 4``), Felzenszwalb positive regions at 256.
        SSPL (zjsong/SSPL; docs/method.md, "SSPL loss"): frozen VGG16 + VGGish, 128 clips per
        process on 2 GPUs; with the PCM 20 epochs at lr 2e-5 (audio head, PCM) and 5e-5
        (SimSiam head), without it (sspl_wo_pcm) 100 epochs at 5e-4 and 2e-3.
        Both: plain shuffled batches (no same-class grouping), fresh views every step.
        """
        if scheme not in SCHEMES:
            raise bad_input("scheme", f"one of {SCHEMES}", scheme)
        common = dict(data=data, out=out, scheme=scheme, mode="full", clips_per_class=0,
                      weight_decay=1e-4)
        if scheme == "sacl":
            values = dict(model=ModelConfig.sacl(), epochs=100, batch_size=64, lr=2e-4, tau=0.005,
                          negative_ratio=0.75, positive_region="segments", segment_size=256)
        elif pcm:
            values = dict(model=ModelConfig.sspl(pcm=True), epochs=20, batch_size=128,
                          lr_audio=2e-5, lr_pcm=2e-5, lr_head=5e-5)
        else:
            values = dict(model=ModelConfig.sspl(pcm=False), epochs=100, batch_size=128,
                          lr_audio=5e-4, lr_head=2e-3)
        return cls(**{**common, **values, **overrides})


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

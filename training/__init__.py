"""avsdk.training: the SSPL and SACL objectives and the loop that trains them.

    python -m avsdk.training.train --data BENCH --out runs/sacl --mode fast --epochs 8
    python -m avsdk.training.evaluate --checkpoint runs/sacl/best.pt --data BENCH --split test
    python -m avsdk.training.pipeline --out runs/main          # the main job (README)

    from avsdk.training.config import TrainConfig
    from avsdk.training.train import train
    train(TrainConfig.published("sacl", data, out))             # each reference's own setup

Modules: ``config`` (TrainConfig), ``train`` (loop, torchrun, CLI), ``fast`` (cached trunk
features), ``data`` (class-grouped batches, augmented views), ``augment``, ``segmentation``
(Felzenszwalb pseudo-segments), ``sacl`` / ``sspl`` / ``steps`` (the objectives), ``evaluate``
and ``pipeline``; ``asset_pack`` rebuilds the committed asset pack from Debian packages
(``python -m avsdk.training.asset_pack``). Nothing heavy is imported until used.
"""

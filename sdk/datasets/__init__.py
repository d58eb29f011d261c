"""The real-parts localization benchmark (real cut-outs, their own recorded sounds).

    from avsdk.datasets import BenchmarkConfig, build_benchmark, load_split
    root = build_benchmark("data/realparts", BenchmarkConfig(seed=0))
    test = load_split(root, "test")          # list[Sample]
    off = load_split(root, "offscreen")      # the sound's source is not in the picture

ASSETS_DIR is the committed asset pack (manifest.json lists every file's origin and licence);
``python -m avsdk.training.asset_pack`` rebuilds it, or a larger one, from the Debian packages.
Needs only numpy, Pillow and soundfile.
"""
from .realparts import (
    ASSETS_DIR,
    OFFSCREEN_KINDS,
    ON_SCREEN_SPLITS,
    SPLITS,
    BenchmarkConfig,
    Sample,
    build_benchmark,
    load_split,
    read_asset_manifest,
)

__all__ = ["ASSETS_DIR", "OFFSCREEN_KINDS", "ON_SCREEN_SPLITS", "SPLITS", "BenchmarkConfig", "Sample", "build_benchmark", "load_split",
           "read_asset_manifest"]

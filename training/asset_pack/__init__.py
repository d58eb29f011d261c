"""avsdk.training.asset_pack: the developer tooling that builds the real-parts asset pack.

    python -m avsdk.training.asset_pack                 # rebuild sdk/datasets/assets/ (< 10 MB)
    python -m avsdk.training.asset_pack --full --out ~/avsdk-assets-full

The runtime side, ``avsdk.datasets``, only reads the finished pack (its manifest.json) and
never imports this package. Modules: ``catalogue`` (which Debian-packaged media make up each
class), ``sources`` (fetch the packages, resolve catalogue references to bytes, origins and
licences), ``qt_rcc`` (read gcompris' Qt resource archives), ``audio`` (decode, trim and cut
recordings), ``soundfonts`` (render instrument phrases) and ``make`` (write the pack and its
manifest).
"""

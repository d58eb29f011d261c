"""python -m avsdk.training.asset_pack: rebuild the asset pack (see make.py)."""
from .make import main

main()

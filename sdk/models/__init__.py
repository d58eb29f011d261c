"""Networks and weights: visual trunks, audio encoders, AVNet, SSPL's PCM and SimSiam head.

    from avsdk.models import ModelConfig, build_model, save_checkpoint, load_checkpoint
    model = build_model(ModelConfig())          # edge model: EfficientNet-Lite0 + small CNN
    sacl = load_sacl_pair("frame_best.pth", "sound_best.pth")
"""
from .avnet import AVNet, build_model
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ModelConfig
from .pcm import PredictiveCoding
from .simsiam import SimSiamHead
from .sspl import SSPL, SSPLOutput
from .weights import load_sacl_pair, load_sspl, load_sspl_head

__all__ = [
    "AVNet",
    "ModelConfig",
    "PredictiveCoding",
    "SSPL",
    "SSPLOutput",
    "SimSiamHead",
    "build_model",
    "load_checkpoint",
    "load_sacl_pair",
    "load_sspl",
    "load_sspl_head",
    "save_checkpoint",
]

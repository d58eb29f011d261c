"""avsdk checkpoints: round trip, atomic write, clear errors on other files."""
import os

import pytest
import torch

from avsdk.errors import CheckpointError, InputError
from avsdk.models import AVNet, ModelConfig, build_model, load_checkpoint, save_checkpoint


def _inputs(batch=2, examples=3, size=224):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 3, size, size, generator=g),
            torch.randn(batch, examples, 1, 96, 64, generator=g))


def test_round_trip_gives_the_same_map(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(), pretrained=False).eval()
    frames, log_mel = _inputs()
    path = tmp_path / "sub" / "edge.pt"
    save_checkpoint(path, model, epoch=3, val_ciou=0.5, note="hello", history=[1, 2])
    loaded, meta = load_checkpoint(path)
    assert isinstance(loaded, AVNet) and not loaded.training
    assert loaded.config == model.config
    assert meta == {"epoch": 3, "val_ciou": 0.5, "note": "hello", "history": [1, 2]}
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames, log_mel), model(frames, log_mel), rtol=0, atol=0)
    assert [p.name for p in path.parent.iterdir()] == ["edge.pt"]  # no temporary left behind


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    model = build_model(ModelConfig(), pretrained=False)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, epoch=1)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]


def test_meta_must_be_json_like(tmp_path):
    model = build_model(ModelConfig(), pretrained=False)
    with pytest.raises(InputError, match="meta"):
        save_checkpoint(tmp_path / "m.pt", model, optimizer=object())
    with pytest.raises(InputError, match="model"):
        save_checkpoint(tmp_path / "m.pt", torch.nn.Linear(2, 2))


def test_missing_corrupt_and_foreign_files_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a torch file")
    with pytest.raises(CheckpointError, match="not a readable PyTorch file"):
        load_checkpoint(corrupt)
    bare = tmp_path / "bare.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), bare)
    with pytest.raises(CheckpointError, match="not an avsdk checkpoint"):
        load_checkpoint(bare)
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole module: refused without unpickling
    with pytest.raises(CheckpointError, match="holds pickled Python objects") as caught:
        load_checkpoint(pickled)
    assert "weights_only" not in str(caught.value)
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)
    with pytest.raises(InputError, match="^path: expected the path of a checkpoint"):
        load_checkpoint(None)


def test_numpy_values_in_meta_are_saved_as_plain_values(tmp_path):
    """np.float64 and np.str_ pass a JSON check but pickle as numpy objects, which the
    weights-only load refused: the checkpoint could be written, not read."""
    import numpy as np

    save_checkpoint(tmp_path / "m.pt", build_model(ModelConfig(), pretrained=False),
                    val_ciou=np.float64(0.625), split=np.str_("val"), sizes=[3])
    _, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta == {"val_ciou": 0.625, "split": "val", "sizes": [3]}
    assert type(meta["val_ciou"]) is float and type(meta["split"]) is str
    with pytest.raises(InputError, match="^meta: "):  # not a float subclass: refused at once
        save_checkpoint(tmp_path / "n.pt", build_model(ModelConfig(), pretrained=False), step=np.int64(3))


def test_files_get_the_usual_mode(tmp_path):
    """0666 less the umask, as open() gives (the temporary file's 0600 is not kept)."""
    umask = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "m.pt", build_model(ModelConfig(), pretrained=False))
    finally:
        os.umask(umask)
    assert (tmp_path / "m.pt").stat().st_mode & 0o777 == 0o644


def test_newer_version_and_mismatched_weights_are_refused(tmp_path):
    model = build_model(ModelConfig(), pretrained=False)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model)
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(path)
    payload["version"] = 1
    payload["state_dict"].pop("visual_proj.weight")
    payload["state_dict"]["extra.weight"] = torch.zeros(1)
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "missing keys (1): visual_proj.weight" in str(info.value)
    assert "unexpected keys (1): extra.weight" in str(info.value)


def test_checkpoint_from_before_nonnegative_loads_a_linear_head_model(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(nonnegative=False), pretrained=False).eval()
    path = tmp_path / "old.pt"
    save_checkpoint(path, model)
    payload = torch.load(path, weights_only=False)
    del payload["model_config"]["nonnegative"]  # what earlier versions wrote
    torch.save(payload, path)
    loaded, _ = load_checkpoint(path)
    assert loaded.config.nonnegative is False
    frames, log_mel = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames, log_mel), model(frames, log_mel), rtol=0, atol=0)


def test_map_location_reaches_torch_load(tmp_path):
    save_checkpoint(tmp_path / "m.pt", build_model(ModelConfig(), pretrained=False))
    seen = []

    def where(storage, location):
        seen.append(location)
        return storage

    load_checkpoint(tmp_path / "m.pt", map_location=where)
    assert seen and set(seen) == {"cpu"}

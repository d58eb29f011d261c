"""The runtime without PyTorch: an exported model runs where torch is not installed.

Two checks of increasing cost: the package's own requirements hold no torch; a subprocess in
which ``import torch`` fails as it does where torch is absent runs an ONNX model on arrays and
files, writes its overlay, and answers the CLI; and a fresh virtual environment that holds only
avsdk's runtime requirements and onnxruntime (no torch at all) does the same.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

# What the device runs: arrays and files in, a result, its overlay, the CLI's JSON; and the
# proof that nothing imported torch on the way.
RUNTIME_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from PIL import Image
    import soundfile
    from avsdk import Localizer
    from avsdk.cli import main

    model, folder = sys.argv[1], sys.argv[2]
    loc = Localizer.load(model)
    rgb = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    wave = (np.random.default_rng(1).standard_normal(4 * 22050) * 0.1).astype(np.float32)
    by_arrays = loc(rgb, wave, sample_rate=22050)
    Image.fromarray(rgb).save(folder + "/frame.png")
    soundfile.write(folder + "/clip.wav", wave, 22050)
    by_files = loc(folder + "/frame.png", folder + "/clip.wav")
    by_files.save_overlay(folder + "/overlay.png", rgb)
    code = main(["localize", model, folder + "/frame.png", folder + "/clip.wav", "--json"])
    print(json.dumps({"arrays": by_arrays.to_dict(), "files": by_files.to_dict(), "cli": code,
                      "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
""")

# Makes `import torch` fail exactly as where torch is not installed (ModuleNotFoundError).
BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, _NoTorch())
""")


class _Tiny(nn.Module):
    """A model with an avsdk graph's inputs and output: frame [B, 3, 224, 224], log_mel
    [B, 3, 1, 96, 64] -> similarity [B, 14, 14]."""

    def __init__(self):
        super().__init__()
        self.visual = nn.Conv2d(3, 8, 16, stride=16)
        self.audio = nn.Linear(96 * 64, 8)

    def forward(self, frame, log_mel):
        audio = self.audio(log_mel.flatten(2)).mean(1)  # [B, 8]
        return torch.einsum("bchw,bc->bhw", self.visual(frame), audio)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from avsdk.export.onnx_export import export_onnx

    torch.manual_seed(0)
    return export_onnx(_Tiny().eval(), tmp_path_factory.mktemp("no_torch") / "tiny.onnx")


def _run(python: str, model: Path, folder: Path, env: dict, prelude: str = "") -> dict:
    done = subprocess.run([python, "-c", prelude + RUNTIME_SCRIPT, str(model), str(folder)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    report["cli_json"] = json.loads("\n".join(lines[:-1]))
    return report


def _check(report: dict, expected: dict) -> None:
    assert report["torch"] == []
    assert report["cli"] == 0
    for key in ("arrays", "files"):  # the same numbers as the process that has torch
        got, want = report[key], expected[key]
        assert got["box"] == want["box"] and got["peak"] == want["peak"]
        assert abs(got["score"] - want["score"]) < 1e-4  # the compiled or the numpy log-mel
    assert report["cli_json"]["box"] == expected["files"]["box"]


@pytest.fixture(scope="module")
def expected(tiny_model, tmp_path_factory) -> dict:
    """The same script run with torch importable (what a development machine gives)."""
    folder = tmp_path_factory.mktemp("with_torch")
    return _run(sys.executable, tiny_model, folder, dict(os.environ))


def test_the_runtime_requirements_hold_no_torch():
    required = importlib.metadata.requires("avsdk") or []
    unconditional = [r for r in required if "extra ==" not in r]
    assert unconditional and not [r for r in unconditional if r.lower().startswith("torch")], unconditional
    by_extra = {extra: [r.split(";")[0].strip() for r in required if f'extra == "{extra}"' in r]
                for extra in ("onnx", "torch", "train", "export")}
    assert any(r.startswith("onnxruntime") for r in by_extra["onnx"])
    assert all(any(r.startswith("torch") for r in by_extra[e]) for e in ("torch", "train", "export"))


def test_an_onnx_model_runs_where_torch_cannot_be_imported(tiny_model, expected, tmp_path):
    report = _run(sys.executable, tiny_model, tmp_path, dict(os.environ), prelude=BLOCK_TORCH)
    _check(report, expected)
    assert (tmp_path / "overlay.png").stat().st_size > 0


def test_a_checkpoint_without_torch_says_what_to_install(checkpoint, tmp_path):
    script = BLOCK_TORCH + textwrap.dedent(f"""
        from avsdk import Localizer, MissingDependencyError
        try:
            Localizer.load({str(checkpoint)!r})
        except MissingDependencyError as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch is needed for running a .pt checkpoint" in done.stdout
    assert "pip install 'avsdk[torch]'" in done.stdout


@pytest.mark.slow
def test_an_onnx_model_runs_in_a_virtual_environment_without_torch(tiny_model, expected, tmp_path):
    """pip installs avsdk (no extras) and onnxruntime into an empty venv: torch is not there."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    pin = f"onnxruntime=={importlib.metadata.version('onnxruntime')}"  # the wheel already in pip's cache
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              str(ROOT), pin], capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "True", "torch was installed into the venv"
    work = tmp_path / "work"
    work.mkdir()
    _check(_run(python, tiny_model, work, {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}), expected)

"""Audio views for training and the visibility calibration's off-screen pairs."""
import numpy as np
import pytest

from avsdk.training.audio_augment import audio_view, coloured_noise
from avsdk.training.visibility import offscreen_pairs, synthetic_clips


@pytest.mark.parametrize("slope", [0.0, 1.0, 2.0])
def test_coloured_noise_has_its_slope(slope):
    noise = coloured_noise(1 << 16, slope, np.random.default_rng(0))
    assert np.sqrt(np.mean(noise ** 2)) == pytest.approx(1.0)
    power = np.abs(np.fft.rfft(noise)) ** 2
    bands = [(100, 200), (1600, 3200)]  # 4 octaves apart
    ratio = np.mean(power[slice(*bands[0])]) / np.mean(power[slice(*bands[1])])
    assert np.log2(ratio) == pytest.approx(4 * slope, abs=0.5)  # power ~ 1 / f**slope


def test_audio_view_keeps_length_and_is_seeded():
    rng = np.random.default_rng(0)
    clip = np.sin(2 * np.pi * 440 * np.arange(48000) / 16000)
    other = [rng.standard_normal(30000)]
    a = audio_view(clip, other, np.random.default_rng(5))
    b = audio_view(clip, other, np.random.default_rng(5))
    assert a.shape == clip.shape and np.array_equal(a, b)
    views = [audio_view(clip, other, np.random.default_rng(s)) for s in range(8)]
    assert not any(np.allclose(v, clip) for v in views)  # a shift at least, always


def test_synthetic_clips_levels(tmp_path):
    import soundfile as sf

    from avsdk.visibility import level_db

    paths = synthetic_clips(tmp_path, 6, seed=0)
    assert [p.name.split("-")[0] for p in paths] == ["silence", "noise"] * 3
    for path in paths:
        wave, rate = sf.read(path)
        assert rate == 16000 and len(wave) == 48000
        low, high = (-70, -50) if path.name.startswith("silence") else (-40, -10)
        assert low - 0.5 <= level_db(wave) <= high + 0.5


def test_offscreen_pairs_never_play_a_pictured_class(tmp_path):
    from avsdk.datasets import Sample

    labels = ["dog", "cow", "pig", "violin", "cello", "dog", "pig", "cow"]
    samples = [Sample(id=f"v{i}", split="val", label=lab, image=tmp_path / f"{i}.jpg", audio=tmp_path / f"{i}.wav",
                      box=(0, 0, 1, 1), mask=tmp_path / "m.png", distractor_label=labels[(i + 3) % 8],
                      distractor_box=(1, 1, 2, 2), distractor_mask=tmp_path / "d.png", background="b", clip="c",
                      objects=(lab, labels[(i + 3) % 8]))
               for i, lab in enumerate(labels)]
    pairs = offscreen_pairs(samples, tmp_path / "synthetic", seed=0, synthetic_fraction=0.25)
    assert len(pairs) == len(samples)
    assert [p.label for p in pairs[:2]] == ["silence", "noise"]
    for sample, pair in zip(samples, pairs):
        assert pair.image == sample.image and pair.box is None
        assert pair.label not in sample.objects
        if pair.label not in ("silence", "noise"):
            assert pair.audio in {s.audio for s in samples if s.label == pair.label}

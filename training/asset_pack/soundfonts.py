"""Render real sampled instruments from SoundFonts into short phrases (asset pack only).

Each SoundFont is an independent set of recordings of an instrument; a phrase is a few
random notes in the instrument's range (or a drum pattern) played by those samples. The
notes of phrase k of a class are the same for every SoundFont, so two SoundFonts sharing
samples produce near-identical phrases and make.py's duplicate check drops the
later one.

Needs ``tinysoundfont`` (MIT), imported lazily:  pip install --no-deps tinysoundfont==0.3.7
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

RATE = 16000
PHRASE_S = 3.6  # rendered length, release tail included (the pack keeps clips <= 4 s)
DRUM_BANK = 128


@dataclass(frozen=True)
class Part:
    """How a class is played: a melodic GM program in a MIDI range, or drum keys."""

    program: int | None  # GM program (0-based); None: the percussion bank
    low: int = 0
    high: int = 127
    drum_keys: tuple[int, ...] = ()
    pattern: str = "melody"  # "melody", "beat" (a drum-kit groove) or "hits"


PARTS: dict[str, Part] = {
    "violin": Part(40, 55, 88),
    "cello": Part(42, 36, 69),
    "trumpet": Part(56, 55, 82),
    "bassoon": Part(70, 34, 67),
    "guitar": Part(24, 40, 76),
    "electric_guitar": Part(27, 40, 79),
    "drum_kit": Part(None, pattern="beat"),
    "cymbal": Part(None, drum_keys=(49, 57, 55, 52, 51), pattern="hits"),  # crash, crash 2, splash, china, ride
    "tom_tom": Part(None, drum_keys=(41, 43, 45, 47, 48, 50), pattern="hits"),  # low floor .. high tom
}


def _tinysoundfont():
    try:
        import tinysoundfont
    except ImportError:
        raise ImportError("rendering the SoundFont instruments needs tinysoundfont: "
                          "pip install --no-deps tinysoundfont==0.3.7") from None
    return tinysoundfont


def drum_preset(synth, sfid: int) -> tuple[int, int]:
    """(bank, preset) of the drum kit: the GM percussion bank's first kit, else the only preset."""
    for bank, preset in [(DRUM_BANK, 0)] + [(b, p) for b in range(129) for p in range(128)]:
        if synth.sfpreset_name(sfid, bank, preset):
            return bank, preset
    raise ValueError("the SoundFont holds no preset")


def phrase_events(label: str, index: int) -> list[tuple[float, int, int, float]]:
    """(start s, key, velocity, duration s) of phrase ``index`` of a class: the same for every
    SoundFont (seeded by the label and index only)."""
    part = PARTS[label]
    rng = np.random.default_rng([zlib.crc32(label.encode()), index])
    events, t = [], 0.0
    end = PHRASE_S - 0.8  # leave room for the release
    if part.pattern == "melody":
        key = int(rng.integers(part.low + 5, part.high - 5))
        while t < end:
            length = float(rng.choice([0.25, 0.375, 0.5, 0.75]))
            key = int(np.clip(key + rng.integers(-5, 6), part.low, part.high))
            events.append((t, key, int(rng.integers(70, 116)), length * 0.95))
            t += length
    elif part.pattern == "beat":
        step = 60.0 / float(rng.uniform(90, 140)) / 2  # eighth notes
        toms = (41, 43, 45, 47, 48, 50)
        n = 0
        while t < end:
            beat = n % 8
            events.append((t, 46 if rng.random() < 0.15 else 42, int(rng.integers(60, 95)), step))  # hi-hat
            if beat in (0, 4) or (beat == 5 and rng.random() < 0.4):
                events.append((t, 36, int(rng.integers(95, 120)), step))  # kick
            if beat in (2, 6):
                events.append((t, 38, int(rng.integers(90, 120)), step))  # snare
            if n == 0 or (beat == 0 and rng.random() < 0.3):
                events.append((t, 49, int(rng.integers(90, 115)), step * 4))  # crash
            if beat == 7 and rng.random() < 0.5:
                events.append((t, int(rng.choice(toms)), int(rng.integers(90, 120)), step))
            t += step
            n += 1
    else:  # single hits with room to ring
        while t < end:
            events.append((t, int(rng.choice(part.drum_keys)), int(rng.integers(80, 121)), 0.8))
            t += float(rng.uniform(0.35, 1.1))
    return events


def render(sf2: str, label: str, index: int) -> np.ndarray:
    """Phrase ``index`` of class ``label`` played by the SoundFont at path ``sf2``:
    float32 mono [PHRASE_S * RATE] at 16 kHz."""
    tsf = _tinysoundfont()
    part = PARTS[label]
    synth = tsf.Synth(samplerate=RATE)
    sfid = synth.sfload(sf2)
    if part.program is None:
        bank, preset = drum_preset(synth, sfid)
        synth.program_select(9, sfid, bank, preset, is_drums=True)
        channel = 9
    else:
        synth.program_select(0, sfid, 0, part.program)
        channel = 0
    changes = sorted([(start, 1, key, vel) for start, key, vel, _ in phrase_events(label, index)]
                     + [(start + dur, 0, key, 0) for start, key, _, dur in phrase_events(label, index)])
    total = int(PHRASE_S * RATE)
    out, done = [], 0
    for when, on, key, vel in changes:
        at = min(int(when * RATE), total)
        if at > done:
            out.append(np.frombuffer(synth.generate(at - done), dtype=np.float32))
            done = at
        if on:
            synth.noteon(channel, key, vel)
        else:
            synth.noteoff(channel, key)
    if total > done:
        out.append(np.frombuffer(synth.generate(total - done), dtype=np.float32))
    stereo = np.concatenate(out).reshape(-1, 2)
    return stereo.mean(axis=1).astype(np.float32)

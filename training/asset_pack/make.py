"""Build the real-parts asset pack from Debian packages (run once by a developer).

    python -m avsdk.training.asset_pack                      # the committed pack (< 10 MB)
    python -m avsdk.training.asset_pack --full --out ~/avsdk-assets-full

Fetches the packages named in catalogue.PACKAGES (and the rsvg-convert tool of
catalogue.TOOLS) with ``apt-get download`` into ``<cache>/debs`` and unpacks them with
``dpkg -x`` into ``<cache>/unpacked`` (never into /; for 0ad-data and widelands-data only the
members in catalogue.PARTIAL; sources.py), then writes cut-outs, background photos, sound clips, licence
texts and ``manifest.json``. The downloads total about 2.5 GB (0ad-data alone 1.4 GB, its
public.zip 3.3 GB unpacked); check the free space of the cache first.

Instrument recordings are rendered from real sampled SoundFonts (soundfonts.py) with
tinysoundfont, imported lazily: ``pip install --no-deps tinysoundfont==0.3.7``. Their origin is
the SoundFont file; the notes played are recorded in the manifest.

The default build is the small pack committed under sdk/datasets/assets/: cut-outs at most
160 px, backgrounds 256 px on the short side (JPEG q85), clips as 16 kHz mono Ogg Vorbis.
``--full`` keeps cut-outs and backgrounds at full resolution, adds more background photos and
writes lossless FLAC clips; point ``build_benchmark(..., assets=that_folder)`` at it.

Long recordings are cut into distinct segments (at quiet points); every clip records its
recording (the benchmark keeps a recording's segments in one split) and time range in the
manifest. Recordings that repeat another one (same audio under another stamp name), silent
recordings, mostly translucent cut-outs and photos without a recorded licence are dropped and
listed under "skipped". Ogg streams carry a random serial number, so a rerun changes the bytes
of the .ogg files (not their audio): commit a rebuilt pack only when its content changed.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from avsdk.datasets import ASSETS_DIR

from . import catalogue
from .audio import MAX_CLIP_S, RATE, is_duplicate, segment_bounds, trim_silence
from .sources import DEFAULT_CACHE, Sources, fetch_packages

MIN_OPAQUE = 0.5  # fraction of a cut-out's visible pixels that must be opaque (alpha >= 128)
DEFAULT_OUT = ASSETS_DIR  # sdk/datasets/assets: the pack the benchmark builder reads
LICENCE_TEXTS = {
    "GPL-2.0-or-later": ["/usr/share/common-licenses/GPL-2"],
    "GPL-3.0-or-later": ["/usr/share/common-licenses/GPL-3"],
    "CC0-1.0": ["/usr/share/common-licenses/CC0-1.0"],
    "GPL-2.0-only": ["/usr/share/common-licenses/GPL-2"],
    "CC-BY-SA-4.0": [
        "/usr/share/common-licenses/CC-BY-SA-4.0",
        str(Path.home() / ".rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/licenses/CC-BY-SA-4.0.txt"),
    ],
}
LICENCE_URLS = {
    "MIT": "https://opensource.org/license/mit (the notice as distributed is in "
           "licences/fluid-soundfont-gm.copyright)",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/legalcode",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/legalcode",
    "Public-Domain": "",
}


# ----------------------------------------------------------------------------- images
def cutout(image: Image.Image, longest: int | None) -> Image.Image:
    """RGBA, cropped to the box of alpha >= 128, longest side <= ``longest`` (None: as is)."""
    rgba = image.convert("RGBA")
    # the builder's masks are alpha >= 128, so faint halos and shadows are cropped away
    rgba = rgba.crop(rgba.getchannel("A").point(lambda a: 255 if a >= 128 else 0).getbbox())
    if longest and max(rgba.size) > longest:
        scale = longest / max(rgba.size)
        rgba = rgba.resize((max(1, round(rgba.width * scale)), max(1, round(rgba.height * scale))),
                           Image.LANCZOS)
    return rgba


def same_photo(image: Image.Image, seen: list[np.ndarray]) -> bool:
    """True if a 16 x 16 grey thumbnail correlates > 0.95 with one already kept
    (gcompris ships some monument photos in two activities)."""
    thumb = np.asarray(image.convert("L").resize((16, 16), Image.BILINEAR), dtype=np.float64).ravel()
    thumb = (thumb - thumb.mean()) / (thumb.std() + 1e-9)
    duplicate = any(float(np.mean(thumb * other)) > 0.95 for other in seen)
    if not duplicate:
        seen.append(thumb)
    return duplicate


def background(image: Image.Image, short_side: int | None) -> Image.Image:
    rgb = image.convert("RGB")
    if short_side and min(rgb.size) > short_side:
        scale = short_side / min(rgb.size)
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.LANCZOS)
    return rgb


# ----------------------------------------------------------------------------- the pack
def build_pack(out: Path, cache: Path = DEFAULT_CACHE, full: bool = False) -> Path:
    """Write the asset pack to ``out`` (replacing it) and return the manifest path."""
    from tqdm import tqdm

    packages = fetch_packages(cache)
    sources = Sources(packages)
    if out.exists():
        shutil.rmtree(out)
    for folder in ("cutouts", "backgrounds", "sounds", "licences"):  # photos/ comes later
        (out / folder).mkdir(parents=True)
    files: dict[str, dict] = {}
    classes: dict[str, dict] = {}
    skipped: list[dict] = []
    sound_ext, sound_format = ("flac", "FLAC") if full else ("ogg", "OGG")
    sound_subtype = "PCM_16" if full else "VORBIS"
    seen_audio: list[np.ndarray] = []

    phrases = 6 if full else 3
    for label, (looks, refs) in tqdm(sorted(catalogue.CLASSES.items()), desc="classes"):
        entry = classes.setdefault(label, {"cutouts": [], "clips": []})
        for look in looks:
            image, origin, rendered = sources.look(look, 1024 if full else 480)
            alpha = np.asarray(image.convert("RGBA").getchannel("A"))
            if (alpha >= 128).sum() < MIN_OPAQUE * (alpha > 0).sum():
                skipped.append({"reference": look if ":" in look else f"tux:{look}",
                                "reason": "mostly translucent: no exact mask"})
                continue
            name = Path(look.split(":")[-1]).stem
            rel = f"cutouts/{label}/{_look_name(look)}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            cutout(image, None if full else 160).save(out / rel, optimize=True)
            origin["processing"] = (rendered + "cropped to the box of alpha >= 128"
                                    + ("" if full else ", longest side <= 160 px (Lanczos)") + ", PNG RGBA")
            files[rel] = {"kind": "cutout", "label": label, **origin}
            entry["cutouts"].append(rel)
        for ref in refs:
            pieces, origin = sources.recording(ref, phrases, label)
            recording = re.sub(r"[^a-z0-9]+", "-", ref.lower()).strip("-")
            rendered = ref.startswith("sf:")
            index = 0
            for number, (audio, what) in enumerate(pieces):
                if np.abs(audio).max() < 1e-3:
                    skipped.append({"reference": f"{ref} {what}".strip(), "reason": "silent upstream"})
                    continue
                audio = trim_silence(audio)
                if is_duplicate(audio, seen_audio):
                    skipped.append({"reference": f"{ref} {what}".strip(),
                                    "reason": "same audio as an earlier recording"})
                    if rendered and number == 0:  # the SoundFont shares this instrument's samples
                        break
                    continue
                seen_audio.append(audio)
                # a rendered phrase stays whole (<= 4 s); recorded files are cut at quiet points
                bounds = [(0, min(len(audio), int(MAX_CLIP_S * RATE)))] if rendered else segment_bounds(audio)
                for a, b in bounds:
                    piece = audio[a:b]
                    piece = 0.89 * piece / (np.abs(piece).max() + 1e-9)  # peak at -1 dBFS
                    rel = f"sounds/{label}/{_clip_name(ref)}-{index}.{sound_ext}"
                    index += 1
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    sf.write(out / rel, piece, RATE, format=sound_format, subtype=sound_subtype)
                    step = ("rendered (see 'rendered'; " + what + ")" if rendered else
                            "decoded" + (f" {what}" if what else "") + f", mixed to mono, resampled to {RATE} Hz (soxr)")
                    files[rel] = {
                        "kind": "clip", "label": label, "recording": recording,
                        "segment_s": [round(a / RATE, 3), round(b / RATE, 3)], **origin,
                        "processing": (f"{step}, silence trimmed at -40 dB, "
                                       + ("" if rendered else f"segment of {len(bounds)} (times after trimming), ")
                                       + f"peak-normalised to -1 dBFS, {sound_format} {sound_subtype}"),
                    }
                    entry["clips"].append(rel)

    for label in [label for label, entry in classes.items() if not entry["cutouts"] or not entry["clips"]]:
        dropped = classes.pop(label)
        for rel in dropped["cutouts"] + dropped["clips"]:
            del files[rel]
        for folder in ("cutouts", "sounds"):
            shutil.rmtree(out / folder / label, ignore_errors=True)
        skipped.append({"reference": label, "reason": "class left without cut-out or clip"})
    backgrounds, seen_photos = [], []
    for name, image, origin in tqdm(list(sources.backgrounds("full" if full else "default")),
                                    desc="backgrounds"):
        if origin["licence"] == "unknown":  # not credited in gcompris' README: leave it out
            skipped.append({"reference": origin["member"], "reason": "no licence recorded upstream"})
            continue
        if same_photo(image, seen_photos):
            skipped.append({"reference": origin["member"], "reason": "same photo as an earlier background"})
            continue
        rel = f"backgrounds/{name}.jpg"
        _save_photo(image, out / rel, origin, full)
        files[rel] = {"kind": "background", **origin}
        backgrounds.append(rel)

    photos = []
    (out / "photos").mkdir()
    for name, label, boxes, image, origin in sources.photos():
        if origin["licence"] == "unknown":
            skipped.append({"reference": origin["member"], "reason": "no licence recorded upstream"})
            continue
        rel = f"photos/{name}.jpg"
        _save_photo(image, out / rel, origin, full)
        files[rel] = {"kind": "photo", "label": label, "boxes": [list(b) for b in boxes],
                      "boxes_by": catalogue.PHOTOS_ANNOTATION, **origin}
        photos.append(rel)

    licences = _write_licences(out, packages, sources, files)
    manifest = {
        "format": "avsdk.realparts.assets", "version": 1, "build": "full" if full else "default",
        "packages": {n: {"version": p["version"], "deb": p["deb"]} for n, p in packages.items()
                     if n not in catalogue.TOOLS},
        "tools": {n: {"version": packages[n]["version"], "deb": packages[n]["deb"]} for n in catalogue.TOOLS},
        "licences": licences, "classes": classes, "backgrounds": backgrounds, "photos": photos,
        "skipped": skipped, "files": files,
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def _save_photo(image: Image.Image, path: Path, origin: dict, full: bool) -> None:
    """A background or annotated photo as JPEG (the default build downsized), and the
    processing note in its origin record."""
    background(image, None if full else 256).save(path, quality=95 if full else 85)
    origin["processing"] = ("decoded from WebP" + ("" if full else ", short side 256 px (Lanczos)")
                            + f", JPEG q{95 if full else 85}")


def _look_name(ref: str) -> str:
    """The cut-out's file stem: the stamp's name, "gc-" + an SVG drawing's, "gc-<archive>-"
    + a gcompris picture's, "oc-" + an Open Clip Art drawing's."""
    if ":" not in ref:  # a Tux Paint stamp
        return Path(ref).name
    kind, _, rest = ref.partition(":")
    if kind == "ocsvg":  # named without the extension
        return "oc-" + Path(rest).name
    stem = Path(rest.split(":")[-1]).stem
    if kind == "gcimg":
        return f"gc-{rest.split(':')[0]}-{stem}"
    return "gc-" + stem


def _clip_name(ref: str) -> str:
    kind, _, rest = ref.partition(":")
    stem = rest if kind == "sf" else Path(rest.split(":")[-1]).stem
    return f"{kind}-{re.sub(r'[^A-Za-z0-9]+', '_', stem)}"


def _write_licences(out: Path, packages: dict, sources: Sources, files: dict) -> dict[str, str]:
    """Copy licence texts and each package's copyright file; returns licence -> file."""
    written = {}
    for name, package in packages.items():
        if name in catalogue.TOOLS:
            continue
        copyright_file = package["root"] / f"usr/share/doc/{name}/copyright"
        rel = f"licences/{name}.copyright"
        shutil.copyfile(copyright_file, out / rel)
        files[rel] = {"kind": "licence", "package": name, "version": package["version"],
                      "path": f"usr/share/doc/{name}/copyright", "licence": "n/a (licence text)"}
    # gcompris keeps its per-file credits in resource/README files and the Free Art License
    # of the memory-sound recordings in resource/Licence.txt.
    used_archives = {f["path"].rsplit("/", 1)[-1].removesuffix(".rcc") for f in files.values()
                     if f.get("path", "").endswith(".rcc")}
    for archive in sorted(used_archives):
        rcc = sources.archive(archive)
        for member in rcc.names():
            if member.endswith(("/README", "resource/Licence.txt")):
                tag = "LAL-1.2" if member.endswith("Licence.txt") else "README"
                folder = member.split("/resource", 1)[-1].strip("/").replace("/", "-")
                folder = folder.removesuffix("README").removesuffix("Licence.txt").strip("-")
                rel = f"licences/gcompris-{archive}{'-' + folder if folder else ''}-{tag}.txt"
                (out / rel).write_bytes(rcc.read(member))
                files[rel] = {"kind": "licence", "package": "gcompris-qt-data",
                              "version": packages["gcompris-qt-data"]["version"],
                              "path": f"{catalogue.GC_RCC}/{archive}.rcc", "member": member,
                              "licence": "n/a (licence text)"}
                if tag == "LAL-1.2":
                    written["LAL-1.2"] = rel
    used = sorted({f["licence"] for f in files.values() if f["kind"] != "licence"})
    for licence in used:
        if licence in written:
            continue
        rel = f"licences/{licence}.txt"
        text = next((Path(p).read_text() for p in LICENCE_TEXTS.get(licence, []) if Path(p).exists()), None)
        if text is None:
            url = LICENCE_URLS.get(licence, "")
            text = (f"{licence}\n\nThe full text was not available offline when this pack was built"
                    + (f"; it is published at {url}" if url else "") + ".\n"
                    + ("Public domain: no licence conditions apply.\n" if licence == "Public-Domain" else ""))
        (out / rel).write_text(text)
        files[rel] = {"kind": "licence", "licence": "n/a (licence text)", "package": "",
                      "version": "", "path": ""}
        written[licence] = rel
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m avsdk.training.asset_pack",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="default: sdk/datasets/assets (or ./avsdk-assets-full with --full)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where .debs are downloaded and unpacked")
    parser.add_argument("--full", action="store_true", help="full resolution, more backgrounds, FLAC clips")
    args = parser.parse_args(argv)
    out = args.out or (Path("avsdk-assets-full") if args.full else DEFAULT_OUT)
    manifest = build_pack(out.resolve(), args.cache, args.full)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {manifest} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()

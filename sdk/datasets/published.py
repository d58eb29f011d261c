"""The published benchmarks, Flickr-SoundNet test and VGG-SS, in the folders that the reference
code (zjsong/SSPL, zjsong/SACL: ``dataset/base.py``, ``dataset/videodataset.py``, ``utils.py``)
reads. docs/datasets.md draws each layout.

    bench = load_published("flickr", "Datasets/SoundNet_Flickr")   # or ("vggss", ".../VGG-Sound")
    bench.items          # the listed pairs with an annotation and their files, in test-list order
    bench.skipped        # the others, each with its reason: nothing is dropped silently
    pair = read_pair(bench, bench.items[0])   # frame uint8 [H, W, 3], sound mono 16 kHz; or Unusable
    print(format_check(check(bench)))         # reads every pair: what is usable, what is not, and why

The ground truth comes from avsdk.metrics (flickr_ground_truth, vggss_ground_truth) at 224x224.
Needs numpy, Pillow and soundfile; h5py for the reference's VGG-SS h5 files (pip install h5py),
PyAV for VGG-SS videos (pip install 'avsdk[video]').
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import metrics
from ..errors import InputError, MissingDependencyError, bad_input, renamed, require

BENCHMARKS = ("flickr", "vggss")
TITLES = {"flickr": "Flickr-SoundNet test", "vggss": "VGG-SS"}
# The folder under the reference's data_path ("Datasets/"); ROOT may be it or that parent.
FOLDERS = {"flickr": "SoundNet_Flickr", "vggss": "VGG-Sound"}
# The test lists the reference reads (both ship in zjsong/SSPL metadata/): 249 of the 250
# annotated Flickr-SoundNet test pairs, 4692 of the 5158 annotated VGG-SS clips.
TEST_LISTS = {"flickr": "flickr_test249_in5k.csv", "vggss": "vggss_test_4692.csv"}
LABELLED = "5k_labeled"
VGGSS_JSON = ("vggss_test_5158.json", "vggss.json")  # the reference's name, then VGG-SS's own
H5_FRAMES = ("h5py_test_frames.h5", "test_frames")  # [N, 256, 256, 3] float32 RGB in 0..255
H5_AUDIOS = ("h5py_test_audios.h5", "test_audios")  # [N, 48000] float32, 3 s at 16 kHz, rescaled
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")  # the reference reads ID.jpg
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")  # the reference reads ID.wav
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
SAMPLE_RATE = 16000

# A sound shorter than one VGGish example (0.96 s) is taken for a broken file: the reference
# would tile it to 3 s and score it, the model hearing the same fragment over and over.
MIN_SECONDS = 0.96
# Samples spanning less than this (full scale 1) carry no sound: zeros, or a DC offset.
SILENT_SPAN = 1e-4

REASONS = ("missing annotation", "bad annotation", "missing frame", "unreadable frame", "missing audio",
           "unreadable audio", "silent audio", "short audio", "unreadable video", "missing h5 row")


@dataclass(frozen=True)
class Item:
    """One listed pair whose annotation and files were found (read_pair reads them)."""

    id: str
    ground_truth: np.ndarray  # float32 [224, 224]: Flickr consensus in {0, 0.5, 1}, VGG-SS {0, 1}
    frame: Path | None = None  # image file
    audio: Path | None = None  # sound file
    video: Path | None = None  # video file, frame and sound both (VGG-SS)
    row: int | None = None  # row of the reference's h5 files (VGG-SS)


@dataclass(frozen=True)
class Skipped:
    id: str
    reason: str  # one of REASONS
    detail: str  # the file and what is wrong with it


@dataclass(frozen=True)
class Benchmark:
    name: str  # "flickr" or "vggss"
    root: Path  # the SoundNet_Flickr or VGG-Sound folder
    layout: str  # "files" (frames + audio, or videos) or "h5" (the reference's VGG-SS files)
    test_list: Path
    ids: tuple[str, ...]  # the test list
    items: tuple[Item, ...]
    skipped: tuple[Skipped, ...]  # listed entries without their annotation or files

    @property
    def title(self) -> str:
        return TITLES[self.name]

    @property
    def listed(self) -> int:
        return len(self.ids)

    def in_list_order(self, skipped) -> tuple[Skipped, ...]:
        """``skipped`` sorted as the test list has the ids."""
        position: dict[str, int] = {}
        for i, id_ in enumerate(self.ids):
            position.setdefault(id_, i)
        return tuple(sorted(skipped, key=lambda s: position.get(s.id, len(position))))


@dataclass(frozen=True)
class Pair:
    frame: np.ndarray  # uint8 [H, W, 3]
    audio: np.ndarray  # float mono [T] at 16 kHz, T >= MIN_SECONDS * 16000


class Unusable(Exception):
    """An item whose files cannot be used; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


# --------------------------------------------------------------------------- listing


def load_published(name: str, root: str | os.PathLike, test_list: str | os.PathLike | None = None) -> Benchmark:
    """List a published benchmark's test pairs as the reference code finds them.

    Args:
        name: "flickr" or "vggss".
        root: the ``SoundNet_Flickr`` / ``VGG-Sound`` folder, or the folder holding it (the
            reference's ``data_path``).
        test_list: a test list to read instead of ``ROOT/flickr_test249_in5k.csv`` /
            ``ROOT/vggss_test_4692.csv`` (one id per line, extra comma-separated fields ignored).
    Raises:
        InputError: naming ``name``, ``root`` (no such folder, or without the pieces its layout
            needs, all listed) or ``test_list`` (unreadable or empty).
        MissingDependencyError: h5py for h5 files, PyAV for videos, when the layout has them.
    """
    if name not in BENCHMARKS:
        raise bad_input("name", f"one of {BENCHMARKS}", name)
    root = _benchmark_folder(name, root)
    if test_list is not None and not Path(test_list).is_file():
        raise bad_input("test_list", "an existing test list file (one id per line)", str(test_list))
    listing = Path(test_list) if test_list is not None else root / TEST_LISTS[name]
    annotations = root / LABELLED / "Annotations"
    if name == "flickr":
        layout, media = "files", [root / LABELLED / "Data" / "frames", root / LABELLED / "Data" / "audio"]
        required = [annotations]
    else:
        json_path = next((annotations / n for n in VGGSS_JSON if (annotations / n).is_file()),
                         annotations / VGGSS_JSON[0])
        layout, media = _vggss_media(root / LABELLED / "Data")
        required = [json_path]
    if test_list is None:
        required.insert(0, listing)
    missing = [_relative(p, root) for p in required if not p.exists()]
    if not all(p.exists() for p in media):
        others = f" (or {LABELLED}/Data/video/, or the reference's h5 files)" if name == "vggss" else ""
        missing.append(" and ".join(_relative(p, root) for p in media if not p.exists())
                       + (others if layout == "files" else ""))
    if missing:
        raise bad_input("root", f"the {TITLES[name]} layout of docs/datasets.md",
                        f"{str(root)!r} without " + ", ".join(missing), described=True)
    ids = _read_test_list(listing, "test_list" if test_list is not None else "root")
    if name == "flickr":
        items, skipped = _flickr_items(root, ids)
    else:
        items, skipped = _vggss_items(root, ids, json_path, layout)
    return Benchmark(name, root, layout, listing, tuple(ids), tuple(items), tuple(skipped))


def _vggss_media(data: Path) -> tuple[str, list[Path]]:
    """(layout, the paths it needs): the reference's two h5 files when either is there, else
    the extracted frames and audio, else the videos."""
    h5 = [data / H5_FRAMES[0], data / H5_AUDIOS[0]]
    if any(p.is_file() for p in h5):
        return "h5", h5
    if (data / "video").is_dir() and not (data / "frames").is_dir():
        return "files", [data / "video"]
    return "files", [data / "frames", data / "audio"]


def _benchmark_folder(name: str, root) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise bad_input("root", "a folder path", root)
    root = Path(root)
    if not root.is_dir():
        raise bad_input("root", f"an existing folder holding {TITLES[name]} (docs/datasets.md)",
                        f"{str(root)!r} ({'a file' if root.exists() else 'no such folder'})", described=True)
    if not (root / LABELLED).is_dir() and (root / FOLDERS[name]).is_dir():
        return root / FOLDERS[name]  # the reference's data_path, one level up
    return root


def _relative(path: Path, root: Path) -> str:
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return text + ("/" if path.suffix == "" else "")


def _read_test_list(path: Path, argument: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_input(argument, "a readable test list (one id per line)", f"{str(path)!r} ({exc})",
                        described=True) from None
    ids = [line.split(",")[0].strip() for line in lines if line.strip()]
    if not ids:
        raise bad_input(argument, "a test list with at least one id", f"{str(path)!r} (empty)", described=True)
    return ids


def _find(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Path | None:
    return next((folder / (stem + s) for s in suffixes if (folder / (stem + s)).is_file()), None)


def _flickr_items(root: Path, ids: list[str]) -> tuple[list[Item], list[Skipped]]:
    items, skipped = [], []
    labelled = root / LABELLED
    for id_ in ids:
        xml = labelled / "Annotations" / f"{id_}.xml"
        frame = _find(labelled / "Data" / "frames", id_, FRAME_SUFFIXES)
        audio = _find(labelled / "Data" / "audio", id_, AUDIO_SUFFIXES)
        if not xml.is_file():
            skipped.append(Skipped(id_, "missing annotation", f"no {LABELLED}/Annotations/{id_}.xml"))
        elif frame is None:
            skipped.append(Skipped(id_, "missing frame", f"no {LABELLED}/Data/frames/{id_}.jpg"))
        elif audio is None:
            skipped.append(Skipped(id_, "missing audio", f"no {LABELLED}/Data/audio/{id_}.wav"))
        else:
            try:
                truth = metrics.flickr_ground_truth(xml)
            except InputError as exc:
                skipped.append(Skipped(id_, "bad annotation", error_detail(exc)))
                continue
            items.append(Item(id_, truth, frame=frame, audio=audio))
    return items, skipped


def _vggss_items(root: Path, ids: list[str], json_path: Path, layout: str) -> tuple[list[Item], list[Skipped]]:
    with renamed({"path": "root"}):  # a broken annotation file is the user's folder's fault
        boxes = metrics.load_vggss_annotations(json_path)
    data = root / LABELLED / "Data"
    rows = _h5_rows(data) if layout == "h5" else 0
    items, skipped = [], []
    needs_video = False
    for row, id_ in enumerate(ids):
        where: dict = {}
        if id_ not in boxes:
            skipped.append(Skipped(id_, "missing annotation", f"no entry {id_!r} in {_relative(json_path, root)}"))
            continue
        if layout == "h5":
            if row >= rows:
                skipped.append(Skipped(id_, "missing h5 row", f"row {row} of the test list; the h5 files "
                                       f"hold {rows} rows"))
                continue
            where["row"] = row
        else:
            frame = _find(data / "frames", id_, FRAME_SUFFIXES)
            audio = _find(data / "audio", id_, AUDIO_SUFFIXES)
            video = _find(data / "video", id_, VIDEO_SUFFIXES)
            if frame is not None and audio is not None:
                where.update(frame=frame, audio=audio)
            elif video is not None:
                where["video"] = video
                needs_video = True
            else:
                kind, folder = ("frame", "frames") if frame is None else ("audio", "audio")
                skipped.append(Skipped(id_, f"missing {kind}", f"no {LABELLED}/Data/{folder}/{id_}.* "
                                       f"(nor {LABELLED}/Data/video/{id_}.*)"))
                continue
        try:
            truth = metrics.vggss_ground_truth(boxes[id_])
        except (TypeError, ValueError) as exc:  # InputError, or a box that holds no numbers
            skipped.append(Skipped(id_, "bad annotation", error_detail(exc)))
            continue
        if not truth.any():
            skipped.append(Skipped(id_, "bad annotation", f"the boxes of {id_!r} cover no pixel: {boxes[id_]}"))
            continue
        items.append(Item(id_, truth, **where))
    if needs_video:
        require("av", "video", "reading the VGG-SS videos")
    return items, skipped


def _h5(purpose: str):
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError(f"h5py is needed for {purpose} but is not installed: pip install h5py") from exc
    return h5py


def _h5_rows(data: Path) -> int:
    """Rows that both h5 files hold (an InputError naming ``root`` for an unreadable file)."""
    h5py = _h5("reading the reference's VGG-SS h5 files")
    counts = []
    for file, key in (H5_FRAMES, H5_AUDIOS):
        try:
            with h5py.File(data / file, "r") as handle:
                counts.append(int(handle[key].shape[0]))
        except (OSError, KeyError, IndexError) as exc:
            raise bad_input("root", f"a readable h5 file holding the dataset {key!r}", f"{data / file} ({exc})",
                            described=True) from None
    return min(counts)


def error_detail(exc: Exception) -> str:
    """An InputError's message without its argument name (which is the reader's, not the user's)."""
    text = str(exc)
    argument = getattr(exc, "argument", None)
    return text[len(argument) + 2:] if argument and text.startswith(argument + ": ") else text


# --------------------------------------------------------------------------- reading


def read_pair(benchmark: Benchmark, item: Item) -> Pair:
    """The frame and the sound of one item, checked.

    Returns:
        Pair: frame uint8 [H, W, 3] (an h5 row: the reference's ``np.uint8`` of its floats),
        sound mono at 16 kHz (the whole file; a video's 3 s around its middle frame).
    Raises:
        Unusable: an unreadable frame, audio or video, silent audio (samples spanning less
            than SILENT_SPAN) or audio shorter than MIN_SECONDS.
    """
    from ..audio import load_audio, to_mono_16k
    from ..frames import load_frame

    if item.row is not None:
        frame, audio, rate = _h5_pair(benchmark.root / LABELLED / "Data", item.row)
    elif item.video is not None:
        from ..video import read_clip

        try:
            clip = read_clip(item.video, clip_seconds=3.0, sample_rate=SAMPLE_RATE)
        except InputError as exc:
            raise Unusable("unreadable video", error_detail(exc)) from None
        frame, audio, rate = clip.frame, clip.audio, clip.sample_rate
    else:
        try:
            frame = load_frame(item.frame, max_pixels=None)
        except (InputError, OSError) as exc:
            raise Unusable("unreadable frame", error_detail(exc)) from None
        try:
            audio, rate = load_audio(item.audio)
        except InputError as exc:
            raise Unusable("unreadable audio", error_detail(exc)) from None
    where = str(item.video or item.audio or f"h5 row {item.row}")
    seconds = len(audio) / rate
    if seconds < MIN_SECONDS:
        raise Unusable("short audio", f"{where}: {seconds:.3f} s of sound, at least {MIN_SECONDS} s needed")
    try:
        audio = to_mono_16k(audio, rate)
    except InputError as exc:
        raise Unusable("unreadable audio", f"{where}: {error_detail(exc)}") from None
    span = float(audio.max() - audio.min())
    if span < SILENT_SPAN:
        raise Unusable("silent audio", f"{where}: the samples span {span:.2g} of full scale (less than "
                       f"{SILENT_SPAN:g}: no sound)")
    return Pair(frame, audio)


def _h5_pair(data: Path, row: int) -> tuple[np.ndarray, np.ndarray, int]:
    h5py = _h5("reading the reference's VGG-SS h5 files")
    arrays = []
    for (file, key), what in ((H5_FRAMES, "frame"), (H5_AUDIOS, "audio")):
        try:
            with h5py.File(data / file, "r") as handle:
                arrays.append(np.asarray(handle[key][row], dtype=np.float32))
        except (OSError, KeyError, IndexError, ValueError) as exc:
            raise Unusable(f"unreadable {what}", f"{file} row {row}: {exc}") from None
    frame, audio = arrays
    if frame.ndim != 3 or frame.shape[2] != 3 or not np.isfinite(frame).all():
        raise Unusable("unreadable frame", f"{H5_FRAMES[0]} row {row}: expected finite RGB [H, W, 3], received "
                       f"shape {frame.shape}")
    # the reference's Image.fromarray(np.uint8(frame)): its frames hold 0..255, the clip is a no-op
    return np.clip(frame, 0, 255).astype(np.uint8), audio, SAMPLE_RATE


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class CheckReport:
    benchmark: Benchmark
    usable: tuple[str, ...]  # ids of the pairs that read_pair accepts
    skipped: tuple[Skipped, ...]  # the benchmark's own skips and read_pair's, in test-list order

    def counts(self) -> Counter:
        return Counter(s.reason for s in self.skipped)


def check(benchmark: Benchmark, progress: bool = False) -> CheckReport:
    """Read every pair of ``benchmark`` as an evaluation would, without a model."""
    items = benchmark.items
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="check", unit="pair", leave=False)
    usable, skipped = [], list(benchmark.skipped)
    for item in items:
        try:
            read_pair(benchmark, item)
        except Unusable as exc:
            skipped.append(Skipped(item.id, exc.reason, exc.detail))
        else:
            usable.append(item.id)
    return CheckReport(benchmark, tuple(usable), benchmark.in_list_order(skipped))


def format_skips(skipped, listed: int, examples: int | None = None) -> str:
    """``skipped N of M: reason n, ...`` and one line per skipped pair (``examples`` per reason at most)."""
    if not skipped:
        return f"skipped 0 of {listed}"
    counts = Counter(s.reason for s in skipped)
    lines = [f"skipped {len(skipped)} of {listed}: " + ", ".join(f"{r} {n}" for r, n in counts.most_common())]
    shown: Counter = Counter()
    for s in skipped:
        shown[s.reason] += 1
        if examples is None or shown[s.reason] <= examples:
            lines.append(f"  {s.id}: {s.reason}: {s.detail}")
    hidden = sum(max(0, n - examples) for n in counts.values()) if examples is not None else 0
    if hidden:
        lines.append(f"  ... and {hidden} more (all of them: --check, or the --json file)")
    return "\n".join(lines)


def format_check(report: CheckReport) -> str:
    bench = report.benchmark
    return "\n".join([
        f"{bench.title} at {bench.root} (layout: {bench.layout})",
        f"test list: {bench.test_list} ({bench.listed} entries)",
        f"usable: {len(report.usable)} of {bench.listed}",
        format_skips(report.skipped, bench.listed),
    ])

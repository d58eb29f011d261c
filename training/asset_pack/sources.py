"""Where the asset pack's media come from: the Debian packages, and the references of
catalogue.py resolved to bytes plus a record of their origin and licence.

fetch_packages downloads and unpacks the packages into a cache; Sources reads files from the
unpacked trees, from gcompris' Qt resource archives (qt_rcc.py) and from 0 A.D.'s zip, and
renders SVG looks (rsvg-convert) and SoundFont phrases (soundfonts.py).
"""
from __future__ import annotations

import fnmatch
import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from . import catalogue, soundfonts
from .audio import RATE, decode_16k_mono
from .qt_rcc import RccArchive

DEFAULT_CACHE = Path.home() / ".cache" / "avsdk" / "debian"


def fetch_packages(cache: Path) -> dict[str, dict]:
    """apt-get download + dpkg -x each package into the cache; returns name -> {version, root}."""
    debs, unpacked = cache / "debs", cache / "unpacked"
    debs.mkdir(parents=True, exist_ok=True)
    found = {}
    for name in catalogue.PACKAGES + catalogue.TOOLS:
        deb = next(iter(sorted(debs.glob(f"{name}_*.deb"))), None)
        if deb is None:
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True)
            deb = next(iter(sorted(debs.glob(f"{name}_*.deb"))))
        root = unpacked / name
        if not root.exists():
            partial = root.with_name(root.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            if name in catalogue.PARTIAL:  # only the members used: dpkg-deb's tar stream
                tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
                subprocess.run(["tar", "-x", "-C", str(partial), *catalogue.PARTIAL[name]],
                               stdin=tar.stdout, check=True)
                if tar.wait() != 0:
                    raise RuntimeError(f"dpkg-deb --fsys-tarfile {deb} failed")
            else:
                subprocess.run(["dpkg", "-x", str(deb), str(partial)], check=True)
            partial.rename(root)  # an interrupted unpack is redone
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        found[name] = {"version": version, "root": root, "deb": deb.name}
    return found


def parse_attributions(text: str) -> dict[str, dict]:
    """gcompris resource README blocks (Copyright/License/Source/Files) -> file name -> fields."""
    result = {}
    for block in re.split(r"\n\s*\n", text):
        fields, files, key = {}, [], None
        for line in block.splitlines():
            match = re.match(r"^(\w+):\s*(.*)$", line)
            if match:
                key = match.group(1).lower()
                if key == "files":
                    files += match.group(2).split()
                else:
                    fields[key] = match.group(2).strip()
            elif key == "files" and line.strip():
                files += line.split()
        for name in files:
            result[Path(name).name] = fields
    return result


class Sources:
    """Resolves catalogue references to bytes plus a record of where they came from."""

    def __init__(self, packages: dict[str, dict]):
        self.packages = packages
        self._archives: dict[str, RccArchive] = {}
        self._credits: dict[tuple[str, str], dict[str, dict]] = {}  # (archive, README) -> file -> fields

    def archive(self, name: str) -> RccArchive:
        if name not in self._archives:
            root = self.packages["gcompris-qt-data"]["root"]
            self._archives[name] = RccArchive(root / catalogue.GC_RCC / f"{name}.rcc")
        return self._archives[name]

    def gc_member(self, archive: str, relative: str) -> str:
        matches = [n for n in self.archive(archive).names() if n.endswith("/resource/" + relative)]
        if len(matches) != 1:
            raise FileNotFoundError(f"{archive}.rcc: {len(matches)} members end in resource/{relative}")
        return matches[0]

    def _origin(self, package: str, path: str, member: str | None = None) -> dict:
        origin = {"package": package, "version": self.packages[package]["version"], "path": path}
        if member:
            origin["member"] = member
        return origin

    def sound(self, ref: str) -> tuple[bytes, dict]:
        kind, _, rest = ref.partition(":")
        if kind == "tux":
            path = f"{catalogue.TUX_STAMPS}/{rest}.ogg"
            root = self.packages["tuxpaint-stamps-default"]["root"]
            origin = self._origin("tuxpaint-stamps-default", path)
            origin["licence"] = catalogue.LICENCES["tuxpaint-stamps-default"]
            return (root / path).read_bytes(), origin
        if kind == "gc":
            archive, relative = rest.split(":", 1)
            member = self.gc_member(archive, relative)
            origin = self._origin("gcompris-qt-data", f"{catalogue.GC_RCC}/{archive}.rcc", member)
            origin["licence"] = catalogue.LICENCES[("gcompris-qt-data", archive)]
            return self.archive(archive).read(member), origin
        if kind == "fd":
            path = f"{catalogue.FD_SOUNDS}/{rest}.oga"
            root = self.packages["sound-theme-freedesktop"]["root"]
            origin = self._origin("sound-theme-freedesktop", path)
            origin["licence"] = catalogue.LICENCES[("sound-theme-freedesktop", rest)]
            return (root / path).read_bytes(), origin
        raise ValueError(f"unknown sound reference {ref!r}")

    def stamp(self, stamp: str) -> tuple[Image.Image, dict]:
        path = f"{catalogue.TUX_STAMPS}/{stamp}.png"
        root = self.packages["tuxpaint-stamps-default"]["root"]
        origin = self._origin("tuxpaint-stamps-default", path)
        origin["licence"] = catalogue.LICENCES["tuxpaint-stamps-default"]
        return Image.open(root / path), origin

    def look(self, ref: str, width: int) -> tuple[Image.Image, dict, str]:
        """A cut-out reference -> (RGBA-able image, origin, processing note)."""
        kind, _, rest = ref.partition(":")
        if kind == "ocsvg":
            path = f"{catalogue.OPENCLIPART_SVG}/{rest}.svg"
            origin = self._origin("openclipart-svg", path)
            origin["licence"] = catalogue.LICENCES["openclipart-svg"]
            svg = (self.packages["openclipart-svg"]["root"] / path).read_bytes()
            image, note = self._render_svg(svg, width, ref)
            return image, origin, note
        if kind not in ("gcsvg", "gcimg"):
            image, origin = self.stamp(ref)
            return image, origin, ""
        archive, relative = rest.split(":", 1)
        member = self.gc_member(archive, relative)
        origin = self._origin("gcompris-qt-data", f"{catalogue.GC_RCC}/{archive}.rcc", member)
        origin["licence"] = catalogue.LICENCES[("gcompris-qt-data", archive, kind.removeprefix("gc"))]
        data = self.archive(archive).read(member)
        if kind == "gcimg":
            return Image.open(io.BytesIO(data)), origin, f"decoded from {Path(member).suffix[1:].upper()}, "
        image, note = self._render_svg(data, width, ref)
        return image, origin, note

    def _render_svg(self, svg: bytes, width: int, ref: str) -> tuple[Image.Image, str]:
        rsvg = self.packages["librsvg2-bin"]["root"] / "usr/bin/rsvg-convert"
        try:
            png = subprocess.run([str(rsvg), "--width", str(width), "--keep-aspect-ratio"],
                                 input=svg, capture_output=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise RuntimeError(f"rsvg-convert (librsvg2-bin, needs the system's librsvg2-2) could "
                               f"not render {ref}: {exc}") from None
        version = self.packages["librsvg2-bin"]["version"]
        return Image.open(io.BytesIO(png)), f"SVG rendered {width} px wide by rsvg-convert {version}, "

    def recording(self, ref: str, phrases: int, label: str) -> tuple[list[tuple[np.ndarray, str]], dict]:
        """One independent recording -> ([(16 kHz mono audio, what it is)], origin).

        Single files are returned whole (cut into segments by the caller); "0ad:" / "wl:"
        groups return one piece per file, "sf:" renders ``phrases`` phrases."""
        kind, _, rest = ref.partition(":")
        if kind == "sf":
            path, licence = catalogue.SOUNDFONTS[rest]
            package = rest.split(":")[0]
            origin = self._origin(package, path)
            origin["licence"] = licence
            part = soundfonts.PARTS[label]
            origin["rendered"] = (f"tinysoundfont 0.3.7 at {RATE} Hz, "
                                  + (f"GM program {part.program}" if part.program is not None
                                     else "percussion kit") + f", {phrases} phrases of {soundfonts.PHRASE_S} s")
            sf2 = str(self.packages[package]["root"] / path)
            pieces = []
            for k in range(phrases):
                notes = soundfonts.phrase_events(label, k)
                pieces.append((soundfonts.render(sf2, label, k),
                               f"phrase {k}: " + " ".join(f"{key}@{t:.3f}s" for t, key, _, _ in notes)))
            return pieces, origin
        if kind == "0ad":
            with zipfile.ZipFile(self.packages["0ad-data"]["root"] / catalogue.ZERO_AD_ZIP) as z:
                members = sorted(n for n in z.namelist() if fnmatch.fnmatchcase(n, rest))
                blobs = [(z.read(n), n) for n in members]
            origin = self._origin("0ad-data", catalogue.ZERO_AD_ZIP)
            origin["members"] = members
            origin["licence"] = catalogue.LICENCES["0ad-data"]
        elif kind == "wl":
            root = self.packages["widelands-data"]["root"] / catalogue.WIDELANDS_DATA
            files = sorted(root.glob(rest))
            blobs = [(f.read_bytes(), f"{catalogue.WIDELANDS_DATA}/{f.relative_to(root)}") for f in files]
            origin = self._origin("widelands-data", f"{catalogue.WIDELANDS_DATA}/{rest}")
            origin["members"] = [name for _, name in blobs]
            origin["licence"] = catalogue.LICENCES["widelands-data"]
        else:
            blob, origin = self.sound(ref)
            return [(decode_16k_mono(blob), "")], origin
        if not blobs:
            raise FileNotFoundError(f"{ref}: no file matches")
        return [(decode_16k_mono(blob), name) for blob, name in blobs], origin

    def backgrounds(self, build: str):
        """Yields (id, PIL image, origin) for every background photo of the build."""
        for archive, folder in catalogue.BACKGROUND_ARCHIVES[build]:
            rcc = self.archive(archive)
            readme = next((n for n in rcc.names() if n.endswith(f"resource/{folder}README")), "")
            for member in rcc.names():
                if not (member.endswith(".webp") and f"/resource/{folder}" in member):
                    continue
                origin = self._credited_photo(archive, member, readme)
                yield f"{archive}-{Path(member).stem}", Image.open(io.BytesIO(rcc.read(member))), origin

    def photos(self):
        """Yields (id, label, boxes, PIL image, origin) for every annotated photo (catalogue.PHOTOS)."""
        for ref, (label, boxes) in catalogue.PHOTOS.items():
            _, archive, relative = ref.split(":", 2)
            member = self.gc_member(archive, relative)
            origin = self._credited_photo(archive, member, member.rsplit("/", 1)[0] + "/README")
            image = Image.open(io.BytesIO(self.archive(archive).read(member)))
            yield f"{archive}-{Path(member).stem}", label, boxes, image, origin

    def _credited_photo(self, archive: str, member: str, readme: str) -> dict:
        """The origin of a gcompris photo with the licence and attribution that the resource
        README ``readme`` of its archive gives it; licence "unknown" when the README is absent
        or does not list the photo (the caller then leaves the photo out)."""
        if (archive, readme) not in self._credits:
            rcc = self.archive(archive)
            self._credits[archive, readme] = (parse_attributions(rcc.read(readme).decode("utf-8"))
                                              if readme in rcc.names() else {})
        credit = self._credits[archive, readme].get(Path(member).name, {})
        origin = self._origin("gcompris-qt-data", f"{catalogue.GC_RCC}/{archive}.rcc", member)
        origin["licence"] = _spdx(credit.get("license", "unknown"))
        origin["attribution"] = {k: credit[k] for k in ("copyright", "source") if k in credit}
        return origin


def _spdx(text: str) -> str:
    cleaned = text.strip().replace(" ", "-")
    return {"Public-Domain": "Public-Domain", "Public-domain": "Public-Domain", "CC-BY-SA-4.0": "CC-BY-SA-4.0"}.get(
        cleaned, cleaned)

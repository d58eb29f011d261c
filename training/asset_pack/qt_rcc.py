"""Read files out of a Qt resource archive (``.rcc``), as gcompris-qt-data ships them.

Layout (Qt's rcc, format versions 1-3), all integers big-endian:
    header   "qres", u32 version, u32 tree offset, u32 data offset, u32 names offset
             (+ u32 feature flags from version 3 on)
    tree     nodes of 14 bytes (+ u64 modification time from version 2 on = 22 bytes):
             u32 name offset, u16 flags, then either
               directory (flags & 2): u32 child count, u32 index of the first child
               file:                  u16 territory, u16 language, u32 data offset
    names    u16 length, u32 hash, then length UTF-16BE code units
    data     u32 length, then the bytes; flags & 1 means zlib with Qt's 4-byte length
             prefix (qCompress), flags & 4 means zstd (not supported here).
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

_DIRECTORY = 0x02
_ZLIB = 0x01
_ZSTD = 0x04


class RccArchive:
    """Read-only view of an ``.rcc`` file: ``names()`` lists files, ``read(name)`` returns bytes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._blob = self.path.read_bytes()
        if self._blob[:4] != b"qres":
            raise ValueError(f"{self.path}: not a Qt resource archive (no 'qres' magic)")
        version, self._tree, self._data, self._names = struct.unpack_from(">4I", self._blob, 4)
        if version not in (1, 2, 3):
            raise ValueError(f"{self.path}: unsupported rcc format version {version}")
        self._node_size = 14 if version == 1 else 22
        self._files: dict[str, tuple[int, int]] = {}
        self._walk(0, "")

    def _name(self, offset: int) -> str:
        length = struct.unpack_from(">H", self._blob, self._names + offset)[0]
        start = self._names + offset + 6  # u16 length + u32 hash
        return self._blob[start : start + 2 * length].decode("utf-16-be")

    def _walk(self, index: int, prefix: str) -> None:
        at = self._tree + index * self._node_size
        name_offset, flags = struct.unpack_from(">IH", self._blob, at)
        # the root node has no meaningful name
        name = "" if index == 0 else self._name(name_offset)
        path = f"{prefix}/{name}" if prefix else name
        if flags & _DIRECTORY:
            count, first = struct.unpack_from(">II", self._blob, at + 6)
            for child in range(first, first + count):
                self._walk(child, path)
        else:
            data_offset = struct.unpack_from(">I", self._blob, at + 10)[0]
            self._files[path] = (data_offset, flags)

    def names(self) -> list[str]:
        """All file paths inside the archive, e.g. ``gcompris/src/activities/.../cow.ogg``."""
        return sorted(self._files)

    def read(self, name: str) -> bytes:
        """The uncompressed bytes of one file. Raises KeyError for an unknown name."""
        offset, flags = self._files[name]
        at = self._data + offset
        length = struct.unpack_from(">I", self._blob, at)[0]
        payload = self._blob[at + 4 : at + 4 + length]
        if flags & _ZSTD:
            raise ValueError(f"{self.path}:{name} is zstd-compressed, which this reader does not support")
        if flags & _ZLIB:
            return zlib.decompress(payload[4:])  # skip qCompress's u32 uncompressed size
        return payload

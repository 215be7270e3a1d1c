"""WebDataset shard writer: deterministic POSIX tars and a manifest per stream.

Members of a sample are `<key>.json`, `<key>.0.png`, ... sorted by name; every member has a fixed
mtime, owner and mode, so the same samples in the same order give byte-identical shards. Each shard
is written to a temp name and renamed; the manifest lists count, bytes and sha256 per shard.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

from operators.sample import file_sha256

FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z: any constant works; zero confuses some tar readers


@dataclass
class ShardInfo:
    name: str
    count: int
    bytes: int
    sha256: str


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info, io.BytesIO(data)


class ShardWriter:
    """Writes samples (dict of member suffix -> bytes) into `<dir>/<stream>-NNNNNN.tar` shards."""

    def __init__(self, folder: Path, stream: str, maxcount: int = 1000, maxsize: int = 256 << 20):
        if maxcount < 1 or maxsize < 1:
            raise ValueError("maxcount and maxsize must be positive")
        self.folder = Path(folder)
        self.stream = stream
        self.maxcount = maxcount
        self.maxsize = maxsize
        self.shards: list[ShardInfo] = []
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._count = 0
        self._size = 0
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, key: str, members: dict[str, bytes]) -> str:
        """Add one sample; returns the shard name it went into."""
        if not key or "." in key or "/" in key:
            raise ValueError(f"invalid sample key {key!r}: no dots or slashes (WebDataset splits on them)")
        size = sum(len(v) + 1024 for v in members.values())  # + header and padding, roughly
        if self._tar is not None and (self._count >= self.maxcount or self._size + size > self.maxsize):
            self._close_shard()
        if self._tar is None:
            self._open_shard()
        assert self._tar is not None
        for suffix in sorted(members):
            info, data = _member(f"{key}.{suffix}", members[suffix])
            self._tar.addfile(info, data)
        self._count += 1
        self._size += size
        return self._name(len(self.shards))

    def _name(self, index: int) -> str:
        return f"{self.stream}-{index:06d}.tar"

    def _open_shard(self) -> None:
        self._tmp = self.folder / (self._name(len(self.shards)) + ".tmp")
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.GNU_FORMAT)
        self._count = 0
        self._size = 0

    def _close_shard(self) -> None:
        assert self._tar is not None and self._tmp is not None
        self._tar.close()
        final = self.folder / self._name(len(self.shards))
        digest = file_sha256(self._tmp)
        nbytes = self._tmp.stat().st_size
        os.replace(self._tmp, final)
        self.shards.append(ShardInfo(final.name, self._count, nbytes, digest))
        self._tar = None
        self._tmp = None

    def close(self) -> list[ShardInfo]:
        if self._tar is not None:
            self._close_shard()
        manifest = {
            "stream": self.stream,
            "count": sum(s.count for s in self.shards),
            "shards": [asdict(s) for s in self.shards],
        }
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.folder / "manifest.json")
        # shards of an earlier, larger build of this stream would otherwise linger
        keep = {s.name for s in self.shards}
        for old in self.folder.glob(f"{self.stream}-*.tar"):
            if old.name not in keep:
                old.unlink()
        return self.shards


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())

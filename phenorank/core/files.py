"""Where image files live: a local path, or any URL an fsspec file system reads (``s3://``,
``gs://``, ``https://``, ``file://``, ...; the protocol's package installed, s3fs for S3), so a
manifest can name files in object storage that every Dask worker reads for itself.

A URL is read through a file object: TIFFs are decoded rather than memory-mapped, and the
identity of a file is still the hash of its bytes, so a file ingested from a local path and from
its URL is the same image.
"""

from __future__ import annotations

import os
import re

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(path) -> bool:
    return isinstance(path, str) and bool(_URL.match(path))


def _fs(url: str):
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise ValueError(f"{url}: reading URLs needs fsspec (pip install fsspec, plus s3fs / gcsfs for the cloud)") \
            from None
    try:
        return url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"{url}: no file system for this URL ({exc})") from None


def _is(path, local, remote: str) -> bool:
    """``local(path)``, or for a URL its file system's ``remote`` test; False where it cannot answer."""
    if not is_url(path):
        return local(path)
    try:
        fs, inner = _fs(path)
        return getattr(fs, remote)(inner)
    except (OSError, ValueError):
        return False


def is_file(path) -> bool:
    return _is(path, os.path.isfile, "isfile")


def open_binary(path):
    """A binary file object (seekable) for a path or URL; close it (or use ``with``)."""
    if not is_url(path):
        return open(path, "rb", buffering=0)
    fs, inner = _fs(path)
    return fs.open(inner, "rb")


def size(path) -> int:
    if not is_url(path):
        return os.path.getsize(path)
    fs, inner = _fs(path)
    return int(fs.size(inner))


def stamp(path) -> tuple[int, str]:
    """(size, modification stamp): what changes when the file does, for caching its hash."""
    if not is_url(path):
        stat = os.stat(path)
        return stat.st_size, str(stat.st_mtime_ns)
    fs, inner = _fs(path)
    info = fs.info(inner)
    changed = next((info[k] for k in ("mtime", "LastModified", "updated", "ETag", "etag") if info.get(k)), "")
    return int(info.get("size") or 0), str(changed)


def join(base, relative: str):
    """``base`` / ``relative`` for a local folder (a Path) or a URL (a str)."""
    from pathlib import Path

    return f"{str(base).rstrip('/')}/{relative}" if is_url(base) else Path(base) / relative


def is_dir(path) -> bool:
    return _is(path, os.path.isdir, "isdir")


def read_bytes(path) -> bytes:
    with open_binary(path) as handle:
        return handle.read()


def relative_files(folder) -> list[str]:
    """Every file under ``folder`` (a local folder or a URL), as paths relative to it, sorted."""
    from pathlib import Path

    if not is_url(folder):
        root = Path(folder)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    fs, inner = _fs(folder)
    inner = inner.rstrip("/")
    return sorted(f[len(inner):].lstrip("/") for f in fs.find(inner) if f.startswith(inner))

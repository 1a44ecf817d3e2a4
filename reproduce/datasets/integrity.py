"""Integrity checks for the data files the project ships (see data/README.md).

The check is the SHA-256 of the *decompressed* content ("content_sha256" in
data/checksums.json): the gzip wrappers are not the original archives, but the bytes
inside are the canonical MNIST / PTB files. Results are cached in-process per
(path, size, mtime), so a sweep that loads the same data many times hashes it once.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKSUMS_FILE",
    "DATA_ROOT",
    "DataError",
    "content_sha256",
    "expected_content_sha256",
    "load_checksums",
    "read_content",
    "read_verified",
    "verify_file",
]

#: The repository's data/ folder (this file is reproduce/datasets/integrity.py).
DATA_ROOT: Path = Path(__file__).resolve().parents[2] / "data"
CHECKSUMS_FILE: Path = DATA_ROOT / "checksums.json"

_CHUNK = 1 << 20
# (resolved path, size, mtime_ns) -> content sha256 of that file version.
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


class DataError(ValueError):
    """A data file is missing, corrupted, malformed or cannot be obtained."""


def positive_count(config: Mapping[str, Any], key: str) -> int:
    """``config[key]`` as a count of examples or tokens, which must be a positive whole number;
    DataError naming the setting otherwise (a negative count would slice from the end)."""
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise DataError(f"data.{key}={value!r}: must be a whole number (--set data.{key}=N)")
    if value <= 0:
        raise DataError(
            f"data.{key}={value}: must be a positive number; set it with --set data.{key}=N"
        )
    return int(value)


def _cache_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _repair_hint(path: Path, *, missing: bool = False) -> str:
    """What to do about a bad or missing file: restore the shipped copy or point elsewhere."""
    try:
        rel = path.resolve().relative_to(DATA_ROOT)
    except ValueError:
        if missing:
            return (
                "put the file there, or pass --data-dir with a folder that has it (or drop "
                "--data-dir: the repository ships a verified copy under data/, see data/README.md)"
            )
        return (
            "replace it with a verified copy (the repository ships one under data/, see "
            "data/README.md), or pass --data-dir with a folder that holds a good copy"
        )
    return f"re-fetch it from git: git checkout -- data/{rel.as_posix()}; or pass --data-dir"


def _open(path: Path):
    """Open ``path`` for binary reading, transparently gunzipping ``*.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _missing(path: Path, expected: str | None) -> DataError:
    what = f" (expected content sha256 {expected})" if expected else ""
    return DataError(f"data file not found: {path}{what}; {_repair_hint(path, missing=True)}")


def _unreadable(path: Path, exc: BaseException) -> DataError:
    return DataError(
        f"cannot read {path}: {exc} (truncated or corrupted file); {_repair_hint(path)}"
    )


def read_content(path: str | os.PathLike[str]) -> bytes:
    """Return the (gunzipped if ``*.gz``) bytes of ``path``; DataError if missing/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path, None)
    try:
        with _open(path) as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise _unreadable(path, exc) from exc


def content_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the decompressed content of ``path``, streamed and cached per version."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path, None)
    key = _cache_key(path)
    cached = _HASH_CACHE.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    try:
        with _open(path) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise _unreadable(path, exc) from exc
    _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def _check(path: Path, expected: str, actual: str) -> None:
    if actual != expected:
        raise DataError(
            f"checksum mismatch for {path}: expected content sha256 {expected}, "
            f"got {actual}; the file is corrupted or is not the canonical data; "
            f"{_repair_hint(path)}"
        )


def verify_file(path: str | os.PathLike[str], expected_content_sha256: str) -> None:
    """Check that the decompressed content of ``path`` hashes to the expected SHA-256.

    Raises DataError naming the file (missing, unreadable or mismatching). The hash is
    streamed, and cached per (path, size, mtime) for the life of the process.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, expected_content_sha256)
    _check(path, expected_content_sha256, content_sha256(path))


def read_verified(path: str | os.PathLike[str], expected_content_sha256: str | None) -> bytes:
    """Read the decompressed content of ``path`` and check it in the same pass.

    ``expected_content_sha256=None`` skips the check. A version already verified in this
    process is not hashed again.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, expected_content_sha256)
    key = _cache_key(path)
    data = read_content(path)
    if expected_content_sha256 is not None:
        actual = _HASH_CACHE.get(key)
        if actual is None:
            actual = hashlib.sha256(data).hexdigest()
            _HASH_CACHE[key] = actual
        _check(path, expected_content_sha256, actual)
    return data


@functools.cache
def load_checksums() -> dict[str, dict[str, str]]:
    """The contents of data/checksums.json: {relative path: {sha256, content_sha256}}."""
    try:
        return json.loads(CHECKSUMS_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(
            f"checksum table not found: {CHECKSUMS_FILE}; "
            "re-fetch it from git: git checkout -- data/checksums.json"
        ) from exc


def expected_content_sha256(relpath: str) -> str:
    """Canonical content SHA-256 of a shipped file, e.g. ``"mnist/t10k-labels-idx1-ubyte.gz"``."""
    try:
        return load_checksums()[relpath]["content_sha256"]
    except KeyError as exc:
        raise DataError(f"no checksum for {relpath!r} in {CHECKSUMS_FILE}") from exc

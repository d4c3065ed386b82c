"""Files at the edges: atomic writes, safe ``.npy`` loading, content fingerprints and keys."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from mrlbench.errors import DataError, MrlbenchError, WriteError

HASH_CHUNK_BYTES = 64 << 20


def cache_dir() -> Path:
    """The user cache folder: ``$MRLBENCH_CACHE`` or ``~/.cache/mrlbench``."""
    return Path(os.environ.get("MRLBENCH_CACHE") or Path.home() / ".cache" / "mrlbench")


# errno values that say the storage refuses writes, not that the data is wrong
STORAGE_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it is renamed onto ``path`` only if the
    block succeeds, so an interrupted write never leaves a half file. A full disk, a
    read-only folder or a missing permission is a ``WriteError`` naming the file (and
    the temporary file is gone)."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; files follow the umask
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno not in STORAGE_ERRORS:
            raise
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path | None]:
    """Yield a temporary folder beside ``path`` to fill; it is renamed onto ``path`` at
    once if the block succeeds, so readers see the whole folder or none of it. When
    another writer published ``path`` first, ``None`` is yielded and nothing is written
    (a content-addressed folder: theirs holds the same). A refused write is a
    ``WriteError`` naming the folder."""
    path = Path(path)
    if path.exists():
        yield None
        return
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o777 & ~current_umask())
        yield Path(tmp)
        try:
            os.rename(tmp, path)
        except OSError as exc:
            if not path.is_dir():  # not the other writer's folder: a real failure
                raise
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    except OSError as exc:
        if exc.errno not in STORAGE_ERRORS:
            raise
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``folder/.lock`` (an exclusive ``flock``) while a run writes the folder; a
    second run into the same folder refuses with a clear error instead of both writing."""
    import fcntl

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / ".lock", "a+")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise WriteError(f"cannot write the run folder {folder}: {exc.strerror or exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise MrlbenchError(
                f"{folder} is in use by another mrlbench run ({owner}); wait for it to "
                "finish or give another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Write through ``write(file)`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=jsonable) + "\n")


def jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able value (cache and resume keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def read_json(path: str | os.PathLike[str]) -> Any | None:
    """The parsed file, or None when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


def load_npy(path: str | os.PathLike[str], mmap: bool = True) -> np.ndarray:
    """Load a ``.npy`` file memory-mapped, never unpickling; any fault is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise DataError(f"{path}: not a valid .npy file (no NumPy header)")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        text = str(exc)
        if "pickle" in text.lower() or "object" in text.lower():
            raise DataError(f"{path}: holds Python objects (pickled); refusing to load") from None
        raise DataError(f"{path}: not a valid .npy file ({text})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read .npy file ({exc})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: not a single .npy array")
    if array.dtype.hasobject:
        raise DataError(f"{path}: holds Python objects (pickled); refusing to load")
    return array


def scan(array: np.ndarray, rows: int = 0, finite: bool = True) -> str:
    """One pass over ``array`` in row chunks: a blake2b content hash (with shape and
    dtype), checking on the way that every value is finite (DataError otherwise)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((array.shape, str(array.dtype))).encode())
    row_bytes = max(1, array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64)))
    rows = rows or max(1, HASH_CHUNK_BYTES // row_bytes)
    for start in range(0, len(array), rows):
        chunk = np.ascontiguousarray(array[start : start + rows])
        if finite and not np.isfinite(chunk).all():
            bad = start + int(np.argwhere(~np.isfinite(chunk))[0][0])
            raise DataError(f"NaN or Inf in the array (first at row {bad})")
        digest.update(chunk.data)
    return digest.hexdigest()

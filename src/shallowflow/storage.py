"""Storage at the edge: atomic Parquet, JSON and text files, the directory lock, and
the guard that keeps a user's finished results.

Every write goes to a temporary file in the destination's directory, is
flushed and fsync'ed, then moved over the destination with ``os.replace``,
which is atomic on POSIX and Windows. A reader therefore sees either the old
file or the complete new one, never a partial write, even if the writer is
killed (SIGKILL) mid-way. Leftover temporaries of killed writers are named
``.<name>.<random>.tmp`` and can be removed with :func:`remove_temporaries`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shallowflow.errors import ShallowflowInputError

__all__ = [
    "TMP_SUFFIX",
    "atomic_open",
    "directory_lock",
    "keep_finished",
    "read_json",
    "read_parquet",
    "remove_temporaries",
    "write_json_atomic",
    "write_parquet_atomic",
    "write_text_atomic",
]

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` atomically on clean exit: the one way
    shallowflow writes a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are for sharing
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_parquet_atomic(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` (without its index) to ``path`` as Parquet, atomically."""
    path = Path(path)
    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_open(path) as f:
        pq.write_table(table, f)
    return path


def read_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a Parquet file written by :func:`write_parquet_atomic`.

    Raises whatever pyarrow raises (``OSError``/``pyarrow.ArrowInvalid``) on a
    missing or corrupt file; callers that tolerate corruption catch those.
    """
    return pq.read_table(Path(path)).to_pandas()


def write_json_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path``, atomically."""
    return write_text_atomic(
        json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n", path
    )


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` (UTF-8) to ``path``, atomically."""
    path = Path(path)
    with atomic_open(path) as f:
        f.write(text.encode("utf-8"))
    return path


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file (e.g. one written by :func:`write_json_atomic`)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def remove_temporaries(directory: str | os.PathLike[str]) -> int:
    """Delete temporaries left in ``directory`` by killed writers; return how many.

    Only safe while no other process writes into ``directory``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    count = 0
    for tmp in directory.glob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            count += 1
    return count


def directory_lock(out_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Exclusive advisory lock on ``out_dir`` (released by the kernel on kill): every
    command that writes into a directory holds it, so two never write there at once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held() -> Iterator[None]:
        with open(out_dir / ".lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ShallowflowInputError(
                    "out_dir", f"another shallowflow command is running in {str(out_dir)!r}"
                ) from None
            yield

    return held()


def keep_finished(
    where: str | os.PathLike[str], what: str, *, param: str = "out", resumable: bool = False
) -> None:
    """Refuse to replace finished results (``what``, e.g. "3 finished cells of this
    sweep") in ``where``: the user passes --overwrite to replace them, or, where the
    work can resume, --resume to reuse them."""
    how = (
        "pass --resume to reuse them or --overwrite to recompute them"
        if resumable
        else "pass --overwrite to replace them"
    )
    raise ShallowflowInputError(param, f"{str(where)!r} holds {what}; {how}")

"""Writing files so that a failure (a full disk, a crash, an interrupt) never leaves one cut short: the new
content goes to a temporary file beside each target, and only once every one of them is whole are they renamed
over their targets (a rename within a directory is atomic and needs no space). The targets then hold either
their old content or their new one, never a part.

    with replacing(a, b) as (tmp_a, tmp_b): ...write tmp_a and tmp_b...    both renamed at the end
    write_text_atomically(path, text)                                        one text file

Torch-free and numpy-free: reports import it before anything heavy.
"""
from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _new_file_mode(existing: Path) -> int:
    """The permission bits the target has, or (a new file) what open() would give it under the umask."""
    try:
        return stat.S_IMODE(os.stat(existing).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def replacing(*paths: str | Path) -> Iterator[list[Path]]:
    """Temporary files beside `paths` (same suffix, so that a writer that goes by it, matplotlib's savefig,
    still does), yielded in their order. When the block ends without an error each is renamed over its
    path, all after every one is written; otherwise they are removed and the paths are left as they were."""
    targets = [Path(p) for p in paths]
    temporaries: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
            os.close(fd)
            temporaries.append(Path(name))
            os.chmod(name, _new_file_mode(target))  # mkstemp's 0600 would make a shared report private
        yield temporaries
        for tmp, target in zip(temporaries, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)  # after the renames there is nothing left to remove


def write_text_atomically(path: str | Path, text: str) -> None:
    """`path` holds `text` (UTF-8), or its old content if the write fails."""
    with replacing(path) as (tmp,):
        tmp.write_text(text, encoding="utf-8")

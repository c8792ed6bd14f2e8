"""Writing a file so that a reader never sees half of it: into a temporary file beside it, then renamed
over it (``os.replace`` is atomic within a filesystem). A crash, a full disk or a signal mid-write leaves
the old file or none, never a torn one. Every file bridge writes for later reading goes through here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, data: str | bytes | Callable[[Path], None]) -> Path:
    """Write ``data`` to ``path`` atomically and return ``path``. ``data`` is text (UTF-8), bytes, or a
    function that writes the file it is given (e.g. ``lambda p: frame.to_csv(p)``); the temporary file
    keeps ``path``'s suffix, so writers that add one (``np.save``) leave it as it is."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        if callable(data):
            data(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

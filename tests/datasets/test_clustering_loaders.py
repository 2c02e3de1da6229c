"""Dataset loaders on tiny files written by the test (MNIST idx, USPS .mat, image folders, arrays)."""
import gzip
import struct

import numpy as np
import pytest

from fe_fast.datasets.digits import load_digits_8x8
from fe_fast.datasets.images import load_array_file, load_clustering_data, load_image_folder
from fe_fast.datasets.mnist import load_mnist, load_mnist_test, read_idx
from fe_fast.datasets.usps import load_usps, load_usps_mat


def _write_idx(path, arr, compress):
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "i" * arr.ndim, *arr.shape)
    data = head + arr.tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx(tmp_path, compress):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    y = np.array([3, 1, 4, 1, 5])
    suf = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suf}", X, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suf}", y, compress)
    Xr, yr = load_mnist(tmp_path / f"t10k-images-idx3-ubyte{suf}", tmp_path / f"t10k-labels-idx1-ubyte{suf}")
    assert np.array_equal(Xr, X) and yr.tolist() == y.tolist()
    # named dataset resolution from a data dir (both the sub-folder layout and the option)
    sub = tmp_path / "data" / "mnist_t10k"
    sub.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (sub / (name + suf)).write_bytes((tmp_path / (name + suf)).read_bytes())
    Xn, yn = load_mnist_test(str(tmp_path / "data"))
    assert np.array_equal(Xn, X)
    X2, y2 = load_clustering_data("mnist-test", data_dir=str(tmp_path / "data"))
    assert np.array_equal(X2, X) and np.array_equal(y2, yn)


def test_mnist_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x08\x08\x08\x08junk")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "junk")
    _write_idx(tmp_path / "imgs", np.zeros((3, 4, 4)), False)
    _write_idx(tmp_path / "labs", np.zeros(2), False)
    with pytest.raises(ValueError, match="do not match"):
        load_mnist(tmp_path / "imgs", tmp_path / "labs")


def test_named_dataset_missing_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FE_FAST_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="FE_FAST_DATA"):
        load_usps(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="mnist_t10k"):
        load_mnist_test(str(tmp_path))


def test_usps_both_packagings(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    fea = rng.integers(0, 256, (6, 256), dtype=np.uint8)
    gnd = np.array([[1], [2], [3], [10], [1], [2]], dtype=np.uint8)
    savemat(tmp_path / "USPS.mat", {"fea": fea, "gnd": gnd})
    X, y = load_usps_mat(tmp_path / "USPS.mat")
    assert X.shape == (6, 16, 16) and np.array_equal(X.reshape(6, -1), fea)
    assert y.tolist() == [0, 1, 2, 9, 0, 1]
    savemat(tmp_path / "usps_all.mat", {"usps_all": np.concatenate([fea, gnd], axis=1)})
    X2, y2 = load_usps_mat(tmp_path / "usps_all.mat")
    assert np.array_equal(X2, X) and np.array_equal(y2, y)
    # named dataset via FE_FAST_DATA-like dir with a usps/ sub-folder
    (tmp_path / "d" / "usps").mkdir(parents=True)
    (tmp_path / "d" / "usps" / "USPS.mat").write_bytes((tmp_path / "USPS.mat").read_bytes())
    X3, _ = load_clustering_data("usps", data_dir=str(tmp_path / "d"))
    assert np.array_equal(X3, X)


def test_image_folder_with_classes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    for cls, n in (("cats", 2), ("dogs", 3)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    X, y, names = load_image_folder(tmp_path)
    assert X.shape == (5, 6, 5) and X.dtype == np.uint8
    assert y.tolist() == [0, 0, 1, 1, 1] and names == ["cats", "dogs"]
    X2, y2 = load_clustering_data(str(tmp_path))
    assert np.array_equal(X2, X) and np.array_equal(y2, y)


def test_image_folder_flat_rgb_and_sizes(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(tmp_path / "b.png")
    X, y, _ = load_image_folder(tmp_path)
    assert X.shape == (2, 4, 4, 3) and y is None
    Image.fromarray(np.zeros((5, 4, 3), np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match="different sizes"):
        load_image_folder(tmp_path)
    X, _, _ = load_image_folder(tmp_path, size=(4, 4))
    assert X.shape == (3, 4, 4, 3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(empty)


def test_array_files(tmp_path):
    X = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.save(tmp_path / "x.npy", X)
    Xr, yr = load_array_file(tmp_path / "x.npy")
    assert np.array_equal(Xr, X) and yr is None
    np.savez(tmp_path / "d.npz", images=X, labels=np.array([1, 0]))
    Xr, yr = load_clustering_data(str(tmp_path / "d.npz"))
    assert np.array_equal(Xr, X) and yr.tolist() == [1, 0]
    np.savez(tmp_path / "bad.npz", X=X, y=np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="labels"):
        load_array_file(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="named datasets"):
        load_clustering_data(str(tmp_path / "missing.npy"))


def test_sklearn_digits():
    X, y = load_digits_8x8()
    assert X.shape == (1797, 8, 8) and X.dtype == np.uint8 and X.max() == 255
    assert sorted(set(y.tolist())) == list(range(10))

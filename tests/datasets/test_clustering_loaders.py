"""Dataset loaders on tiny files written by the test (MNIST idx, USPS .mat, image folders, arrays)."""
import gzip
import struct

import numpy as np
import pytest

from fe_fast.datasets.digits import load_digits_8x8
from fe_fast.datasets.images import (
    default_image_size, load_array_file, load_clustering_data, load_image_folder, load_images, read_image_folder,
)
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
    # mixed sizes: the median size (4 x 4) by default, or the size given
    X, _, _ = load_image_folder(tmp_path)
    assert X.shape == (3, 4, 4, 3)
    X, _, _ = load_image_folder(tmp_path, size=(6, 5))
    assert X.shape == (3, 6, 5, 3)
    with pytest.raises(ValueError, match="size"):
        load_image_folder(tmp_path, size=(2, 8))
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


def _write_real_folder(root):
    """Two classes of generated photos: PNG and JPEG, grey / RGB / RGBA / palette / 16-bit grey,
    three sizes and aspect ratios, plus a corrupt JPEG, a truncated PNG and a stray text file."""
    from PIL import Image

    rng = np.random.default_rng(3)
    specs = {
        "alice": [("a0.png", "RGB", (40, 30)), ("a1.jpg", "L", (48, 36)), ("a2.png", "RGBA", (40, 30)),
                  ("a3.jpeg", "RGB", (64, 30))],
        "bob": [("b0.png", "P", (40, 30)), ("b1.png", "I;16", (36, 36)), ("b2.JPG", "RGB", (40, 30))],
    }
    for cls, files in specs.items():
        (root / cls).mkdir(parents=True)
        for name, mode, (h, w) in files:
            if mode == "I;16":
                im = Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
            else:
                im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
            im.save(root / cls / name)
    (root / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = (root / "alice" / "a0.png").read_bytes()
    (root / "alice" / "cut.png").write_bytes(good[: len(good) // 2])
    (root / "alice" / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(root / "loose.png")


def test_real_folder_mixed_sizes_modes_and_corrupt_files(tmp_path):
    _write_real_folder(tmp_path)
    with pytest.warns(UserWarning, match="directly in the folder are ignored"):
        s = read_image_folder(tmp_path)
    # the two unreadable files are named, the other seven images are all kept
    assert sorted(x.split(":")[0] for x in s.skipped) == ["alice/cut.png", "bob/broken.jpg"]
    assert len(s.files) == 7 and "alice/a3.jpeg" in s.files and "bob/b1.png" in s.files
    assert s.class_names == ["alice", "bob"] and s.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    # colour (some images are RGB), median size of the readable images (40 x 30)
    assert s.images.shape == (7, 40, 30, 3) and s.images.dtype == np.uint8 and s.size == (40, 30)
    # 16-bit grey is scaled to 8 bits, not clipped at 255 (a clipped image would be nearly all 255)
    b1 = s.images[s.files.index("bob/b1.png")]
    assert np.array_equal(b1[..., 0], b1[..., 1]) and 60 < b1.mean() < 200
    # an explicit size, forced grey, and no labels: every image below the folder (loose one included)
    s2 = read_image_folder(tmp_path, size=(16, 12), grayscale=True, labels=False)
    assert s2.images.shape == (8, 16, 12) and s2.labels is None and "loose.png" in s2.files
    assert len(s2.skipped) == 2
    with pytest.warns(UserWarning, match="directly in the folder"), pytest.warns(UserWarning, match="bob/broken.jpg"):
        X, y = load_clustering_data(str(tmp_path))
    assert X.shape == (7, 40, 30, 3) and y.tolist() == s.labels.tolist()
    with pytest.raises(ValueError, match="labels=True"):
        read_image_folder(tmp_path / "alice", labels=True)


def test_folder_of_only_unreadable_files_names_them(tmp_path):
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="x.png"):
        read_image_folder(tmp_path)


def test_default_image_size_policy():
    assert default_image_size([(28, 28)] * 3) == (28, 28)  # one shared size: kept
    assert default_image_size([(100, 80)] * 2) == (64, 51)  # capped at max_side, aspect kept
    assert default_image_size([(40, 30), (48, 36), (20, 10)]) == (40, 30)  # median
    assert default_image_size([(400, 300), (500, 400)], max_side=32) == (32, 25)
    assert default_image_size([(2, 2), (3, 3)]) == (4, 4)  # the encoder's minimum
    with pytest.raises(ValueError, match="max_side"):
        default_image_size([(8, 8)], max_side=2)


def test_centre_crop_keeps_the_middle(tmp_path):
    """A wide image is centre-cropped to the target aspect before resizing, not squeezed."""
    from PIL import Image

    wide = np.zeros((20, 60), np.uint8)
    wide[:, 20:40] = 255  # a white square in the middle third
    Image.fromarray(wide).save(tmp_path / "w.png")
    X, _, _ = load_image_folder(tmp_path, size=(20, 20))
    assert X.shape == (1, 20, 20) and X[0, :, 3:17].min() == 255


def test_size_applies_to_folders_only():
    with pytest.raises(ValueError, match="folders only"):
        load_images("digits", size=(16, 16))
    assert load_images("digits", labels=False).labels is None

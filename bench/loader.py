"""Epoch time of three input pipelines on real MNIST with the Lab 3 MLP, in one run.

    python bench/loader.py [--repeats 3] [--threads N]

(a) classic: a per-sample Dataset that turns each image into a PIL image and
    then a tensor (what torchvision's ``MNIST`` + ``ToTensor`` do; the real
    torchvision transform is used when it imports), through a ``DataLoader``;
(b) labkit: ``train.loader(64, shuffle=True)``, one shuffle per epoch and
    contiguous batch slices;
(c) floor: the same training on float batches sliced in advance, i.e. compute only.

All three train the same MLP (784-50-50-10, ReLU, batch 64, SGD lr 0.01) for one
full epoch of 60 000 images from the same initial weights (seed 0).  Each is
timed ``--repeats`` times, interleaved, and the fastest run counts, because
timings on a shared 2-core machine are noisy; only the ratios are compared
with the targets (a/b >= 20, b/c <= 1.3).

a/b can never exceed a/c: however fast the loader, the training itself
costs c.  The script prints that ceiling, and the ratio of the two input
pipelines alone (one epoch of batches, no training), so a missed a/b target
can be told apart from a slow loader.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

from labkit.data import load_mnist

try:  # optional: the real thing when this torch has a matching torchvision
    from torchvision.transforms import ToTensor
    CLASSIC = "torchvision ToTensor"
except Exception:  # noqa: BLE001 - a CUDA torchvision next to CPU torch fails with odd errors
    CLASSIC = "PIL + ToTensor equivalent (torchvision not importable)"

    class ToTensor:
        """torchvision.transforms.ToTensor for a greyscale PIL image: [1, H, W] float in [0, 1]."""

        def __call__(self, image: Image.Image) -> torch.Tensor:
            # The steps of torchvision.transforms.functional.to_tensor for a PIL image.
            tensor = torch.from_numpy(np.array(image, np.uint8, copy=True))
            tensor = tensor.view(image.size[1], image.size[0], len(image.getbands()))
            return tensor.permute((2, 0, 1)).contiguous().to(dtype=torch.get_default_dtype()).div(255)


class PerSampleMNIST(torch.utils.data.Dataset):
    """What torchvision.datasets.MNIST does per item: a PIL image from the uint8 array, then the transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels, self.transform = images, labels, ToTensor()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index].numpy(), mode="L")
        return self.transform(image), int(self.labels[index])


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(),
                         nn.Linear(50, 10))


def train_epoch(batches) -> tuple[float, int]:
    """One epoch of SGD over ``batches``; returns (seconds, images seen)."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    seen = 0
    start = time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        seen += len(y)
    return time.perf_counter() - start, seen


def iterate_epoch(batches) -> float:
    """Seconds to produce one epoch of batches, with no training: the input pipeline alone."""
    start = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per pipeline (fastest counts)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train, _ = load_mnist(verbose=False)
    classic = torch.utils.data.DataLoader(PerSampleMNIST(train.images, train.labels), batch_size=64, shuffle=True)
    labkit = train.loader(batch_size=64, shuffle=True, seed=0)
    floor = [(x.clone(), y.clone()) for x, y in train.loader(batch_size=64)]
    pipelines = {"a": ("classic per-sample DataLoader", classic), "b": ("labkit TensorLoader", labkit),
                 "c": ("compute floor (pre-sliced)", floor)}
    print(f"MNIST train, {len(train)} images, MLP 784-50-50-10, batch 64, SGD; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; classic pipeline: {CLASSIC}")
    train_epoch(floor[:50])  # warm-up: first-call allocations are not part of any pipeline
    best = {key: float("inf") for key in pipelines}
    alone = {key: float("inf") for key in ("a", "b")}
    for _ in range(args.repeats):
        for key, (_, batches) in pipelines.items():
            seconds, seen = train_epoch(batches)
            assert seen == len(train), f"{key} saw {seen} images"
            best[key] = min(best[key], seconds)
            if key in alone:
                alone[key] = min(alone[key], iterate_epoch(batches))
    for key, (name, _) in pipelines.items():
        print(f"({key}) {name:32s} {best[key]:7.3f} s/epoch")
    ab, bc = best["a"] / best["b"], best["b"] / best["c"]
    ok_ab, ok_bc = ab >= 20, bc <= 1.3
    print(f"a/b = {ab:6.1f}  (labkit vs classic; target >= 20)   {'ok' if ok_ab else 'MISSED'}")
    print(f"b/c = {bc:6.2f}  (labkit vs compute floor; target <= 1.3)  {'ok' if ok_bc else 'MISSED'}")
    print(f"ceiling for a/b on this machine: a/c = {best['a'] / best['c']:.1f}")
    print(f"input pipeline alone, no training: classic {alone['a']:.3f} s, labkit {alone['b']:.3f} s, "
          f"ratio {alone['a'] / alone['b']:.0f}")
    return 0 if ok_ab and ok_bc else 1


if __name__ == "__main__":
    sys.exit(main())

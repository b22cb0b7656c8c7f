"""Training loop, evaluation, seeding and checkpoints for the labs.

Most labs need three lines:

    set_seed(0)
    history = fit(model, train_loader, epochs=5, loss_fn=nn.CrossEntropyLoss(),
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                  val_loader=val_loader)
    result = evaluate(model, test_loader)          # result.accuracy, result.predictions

`fit` works with any iterable of (x, y) batches that has len(): labkit loaders
or a torch DataLoader. Accuracies are fractions in [0, 1], never percent.
"""

import copy
import importlib.metadata
import os
import random
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from labkit.diagnose import FirstBatchError, first_batch

__all__ = [
    "EarlyStopping", "Evaluation", "FirstBatchError", "History", "TrainingDiverged", "evaluate", "fit",
    "load_model", "pick_device", "read_metadata", "save_model", "set_seed",
]


class TrainingDiverged(FloatingPointError):
    """Raised by `fit` when a batch loss becomes NaN or infinite, or explodes: more than
    `EXPLODED` times its first batch's value (or than `EXPLODED`, when that was below 1)."""


EXPLODED = 1000.0  # a batch loss above EXPLODED * max(first batch loss, 1) stops training


# --------------------------------------------------------------------------- history

class History:
    """What `fit` recorded, one dict per epoch in `.epochs`.

    Keys of each epoch: "epoch" (1-based), "train_loss", "train_acc",
    "val_loss" and "val_acc" (only with a val_loader), "time" (seconds) and
    "lr" (learning rate of param group 0 at the start of the epoch).
    `history["val_acc"]` gives the list of values for one key.
    `best_epoch` is set when early stopping is used; `stopped_epoch` is the
    epoch at which early stopping (or a callback) ended training, else None.
    """

    def __init__(self, epochs=(), name: str | None = None):
        self.epochs = [dict(record) for record in epochs]
        self.name = name
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None

    def keys(self) -> list:
        return list(dict.fromkeys(key for record in self.epochs for key in record))

    def __getitem__(self, key: str) -> list:
        if key not in self.keys():
            available = ", ".join(self.keys()) or "none (no epochs yet)"
            hint = "; val_* keys need fit(..., val_loader=...)" if key.startswith("val_") else ""
            raise KeyError(f"history has no {key!r}; available keys: {available}{hint}")
        return [record.get(key) for record in self.epochs]

    def __contains__(self, key) -> bool:
        return key in self.keys()

    def __len__(self) -> int:
        return len(self.epochs)

    def to_dict(self) -> dict:
        """Plain dict of lists, e.g. {"epoch": [1, 2], "train_loss": [0.9, 0.5], ...}; JSON-able."""
        return {key: self[key] for key in self.keys()}

    @classmethod
    def from_dict(cls, d: dict, name: str | None = None) -> "History":
        """Inverse of `to_dict` (all lists must have the same length)."""
        lengths = {key: len(values) for key, values in d.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"all lists must have the same length, got {lengths}")
        n = next(iter(lengths.values()), 0)
        return cls([{key: d[key][i] for key in d} for i in range(n)], name=name)

    def __repr__(self) -> str:
        if not self.epochs:
            return "History(0 epochs)"
        last = ", ".join(f"{key}={value:.4g}" for key, value in self.epochs[-1].items()
                         if key not in ("epoch", "time") and value is not None)
        extra = "".join(f", {key}={getattr(self, key)}" for key in ("best_epoch", "stopped_epoch")
                        if getattr(self, key) is not None)
        name = f"{self.name!r}, " if self.name else ""
        return f"History({name}{len(self)} epochs, last: {last}{extra})"


# --------------------------------------------------------------------------- early stopping

class EarlyStopping:
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    `mode="auto"` maximises *_acc and minimises everything else. With
    `restore_best=True` the model gets back the weights of `best_epoch` when
    training ends (whether it stopped early or ran all epochs).
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best=True):
        if mode == "auto":
            mode = "max" if monitor.endswith("acc") else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode, self.restore_best = mode, restore_best
        self.reset()

    def reset(self):
        self.best_value, self.best_epoch, self.best_state, self.bad_epochs = None, None, None, 0

    def update(self, value: float, epoch: int, model: nn.Module) -> bool:
        """Record one epoch's value; return True when training should stop."""
        if self.mode == "min":
            improved = self.best_value is None or value < self.best_value - self.min_delta
        else:
            improved = self.best_value is None or value > self.best_value + self.min_delta
        if improved:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            if self.restore_best:
                self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def __repr__(self) -> str:
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, mode={self.mode!r}, restore_best={self.restore_best})")


# --------------------------------------------------------------------------- device and seed

def pick_device(prefer=None) -> torch.device:
    """The device to train on: `prefer` if given and available, else cuda, else mps, else cpu."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": hasattr(torch.backends, "mps") and torch.backends.mps.is_available()}
    if prefer is not None and available.get(torch.device(prefer).type, False):
        return torch.device(prefer)
    return torch.device(next(kind for kind in ("cuda", "mps", "cpu") if available[kind]))


def set_seed(seed: int = 0) -> int:
    """Seed python, numpy and torch and ask torch for deterministic kernels; return `seed`.

    The same seed gives the same run on the same machine (same hardware and
    library versions); results may still differ slightly between machines.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every cuda device
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        # cuBLAS needs this to be deterministic on GPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # Only on a GPU: the CPU kernels the labs use are deterministic already (the same weights, bit
        # for bit, with and without it), and the switch imports torch._inductor, 1-4 s per kernel.
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


# --------------------------------------------------------------------------- predictions

def _labels(outputs, targets, loss_fn=None):
    """(predicted labels, true labels) as int64 vectors, for any output layout."""
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        predicted = outputs.argmax(dim=1)
        if targets.shape == outputs.shape:  # one-hot targets (e.g. MSE on softmax outputs)
            targets = targets.argmax(dim=1)
        return predicted, targets.long()
    # One output per sample: logits for BCEWithLogitsLoss, probabilities otherwise.
    logits = (isinstance(loss_fn, nn.BCEWithLogitsLoss)
              or loss_fn is nn.functional.binary_cross_entropy_with_logits)
    predicted = (outputs.reshape(-1) > (0.0 if logits else 0.5)).long()
    return predicted, targets.reshape(-1).round().long()


class Evaluation(NamedTuple):
    """Result of `evaluate`: loss (None without loss_fn), accuracy in [0, 1],
    predictions and targets as int64 class indices on the CPU."""
    loss: float | None
    accuracy: float
    predictions: torch.Tensor
    targets: torch.Tensor


def evaluate(model: nn.Module, loader, loss_fn=None, device=None) -> Evaluation:
    """Run `model` over `loader` in eval mode without gradients.

    `device` defaults to where the model's parameters already are. Single-output
    models predict 1 when the output is > 0.5 (> 0 with nn.BCEWithLogitsLoss).
    The model's previous train/eval mode is restored afterwards.
    """
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    model.to(device)
    was_training = model.training
    model.eval()
    total_loss, predictions, targets = 0.0, [], []
    try:
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                if predictions:
                    outputs = model(x)
                    loss = loss_fn(outputs, y) if loss_fn is not None else None
                else:  # the first batch: a mismatch of model and data gets a message about the code
                    outputs, loss = first_batch(model, x, y, loss_fn)
                if loss is not None:
                    total_loss += loss.item() * len(y)
                predicted, true = _labels(outputs, y, loss_fn)
                predictions.append(predicted.cpu())
                targets.append(true.cpu())
    finally:
        model.train(was_training)
    if not predictions:
        raise ValueError("the loader yielded no batches; is the dataset empty?")
    predictions, targets = torch.cat(predictions), torch.cat(targets)
    loss = total_loss / len(targets) if loss_fn is not None else None
    return Evaluation(loss, (predictions == targets).float().mean().item(), predictions, targets)


# --------------------------------------------------------------------------- training

def _diverged(loss, x, epoch, batch, n_batches, lr) -> TrainingDiverged:
    inputs = "" if torch.isfinite(x).all() else " The inputs of this batch already contain NaN or inf."
    return TrainingDiverged(
        f"training diverged: the loss became {loss.item()} at epoch {epoch}, batch {batch} of "
        f"{n_batches}, with learning rate {lr:g}.{inputs}\n"
        f"Try a lower learning rate, e.g. lr={lr / 10:g} (10x lower), and check the input "
        f"scaling (e.g. pixels in [0, 1], not 0..255).")


def _exploded(value, start, epoch, batch, n_batches, lr) -> TrainingDiverged:
    return TrainingDiverged(
        f"training exploded: the loss rose from {start:.4g} at the first batch to {value:.4g} at epoch {epoch}, "
        f"batch {batch} of {n_batches} (more than {EXPLODED:g} times where it started), with learning rate "
        f"{lr:g}. The steps are far too large: the weights are thrown further out with every step.\n"
        f"Try a lower learning rate, e.g. lr={lr / 10:g} (10x lower), and check the input scaling "
        f"(e.g. pixels in [0, 1], not 0..255).")


def fit(model: nn.Module, train_loader, *, epochs: int, optimizer, loss_fn, val_loader=None,
        scheduler=None, early_stopping=None, callbacks=(), device=None, progress=True,
        scheduler_interval="epoch", live=False) -> History:
    """Train `model` for `epochs` epochs and return a `History`.

    - train_loss is the mean over samples; train_acc is measured on the fly
      during the epoch (dropout active), val_* by `evaluate` after it.
    - `scheduler` is stepped after each epoch, or after each batch with
      `scheduler_interval="batch"` (e.g. StepLR with a step size in iterations);
      ReduceLROnPlateau gets the val loss (train loss without a val_loader).
    - `early_stopping`: an int (patience on val_loss) or an `EarlyStopping`.
    - `callbacks`: functions `cb(model, history)` called after each epoch
      (after early stopping took its snapshot); returning True stops training.
    - `device` defaults to `pick_device()`; the model and every batch move there.
    - `progress=False` prints nothing.
    - `live=True` draws the loss and accuracy curves in the notebook and redraws
      them after every epoch (one image, updated in place); nothing happens
      outside a notebook or under the autograder (nbgrader's NBGRADER_EXECUTION).
    The first batch is checked once: a model that cannot take the inputs, a
    last layer with fewer outputs than there are classes or labels of the wrong
    dtype raise `FirstBatchError`, which says what to change. A NaN or infinite
    loss, or one more than EXPLODED times above where it started, stops at once
    with `TrainingDiverged`, leaving the model as it is.
    """
    if scheduler_interval not in ("epoch", "batch"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and scheduler_interval == "batch":
        raise ValueError("ReduceLROnPlateau needs a loss per epoch: use scheduler_interval='epoch'")
    if isinstance(early_stopping, int):
        early_stopping = EarlyStopping(patience=early_stopping)
    if early_stopping is not None:
        monitors = ("train_loss", "train_acc", "val_loss", "val_acc")
        if early_stopping.monitor not in monitors:
            raise ValueError(f"early stopping can monitor {', '.join(monitors)}; "
                             f"got {early_stopping.monitor!r}")
        if early_stopping.monitor.startswith("val_") and val_loader is None:
            raise ValueError(f"early stopping monitors {early_stopping.monitor!r} but fit() got no "
                             "val_loader; pass val_loader=... (e.g. from train.split(0.1)) "
                             "or monitor 'train_loss'")
        early_stopping.reset()  # the same object may be reused across runs
    if callable(callbacks):  # a single callback is fine too
        callbacks = [callbacks]
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    history = History()
    n_batches = len(train_loader)
    start_loss = None  # the first batch's loss: a loss far above it has exploded
    curves = _live_curves(epochs) if live else None

    with tqdm(range(1, epochs + 1), desc="epochs", unit="epoch", disable=not progress) as epoch_bar:
        for epoch in epoch_bar:
            model.train()
            start, lr = time.perf_counter(), float(optimizer.param_groups[0]["lr"])
            total_loss, correct, seen = 0.0, 0, 0
            with tqdm(train_loader, total=n_batches, desc=f"epoch {epoch}", leave=False,
                      disable=not progress) as batch_bar:
                for batch, (x, y) in enumerate(batch_bar, start=1):
                    x, y = x.to(device), y.to(device)
                    if start_loss is None:  # a mismatch of model and data gets a message about the code
                        outputs, loss = first_batch(model, x, y, loss_fn)
                    else:
                        outputs = model(x)
                        loss = loss_fn(outputs, y)
                    if not torch.isfinite(loss):
                        raise _diverged(loss, x, epoch, batch, n_batches,
                                        float(optimizer.param_groups[0]["lr"]))
                    value = loss.item()
                    if start_loss is None:
                        start_loss = value
                    elif value > EXPLODED * max(start_loss, 1.0):
                        raise _exploded(value, start_loss, epoch, batch, n_batches,
                                        float(optimizer.param_groups[0]["lr"]))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    if scheduler is not None and scheduler_interval == "batch":
                        scheduler.step()
                    total_loss += value * len(y)
                    predicted, true = _labels(outputs.detach(), y, loss_fn)
                    correct += (predicted == true).sum().item()
                    seen += len(y)
                    batch_bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
            if seen == 0:
                raise ValueError("the train loader yielded no batches; is the dataset empty?")

            record = {"epoch": epoch, "train_loss": total_loss / seen, "train_acc": correct / seen}
            if val_loader is not None:
                result = evaluate(model, val_loader, loss_fn, device)
                record.update(val_loss=result.loss, val_acc=result.accuracy)
            record.update(time=time.perf_counter() - start, lr=lr)
            history.epochs.append(record)
            epoch_bar.set_postfix({key: f"{value:.4f}" for key, value in record.items()
                                   if key.endswith(("loss", "acc"))})
            if curves is not None:
                curves.update(history)

            if scheduler is not None and scheduler_interval == "epoch":
                if plateau:
                    scheduler.step(record.get("val_loss", record["train_loss"]))
                else:
                    scheduler.step()
            stop = False
            if early_stopping is not None:
                stop = early_stopping.update(record[early_stopping.monitor], epoch, model)
            for callback in callbacks:
                stop = bool(callback(model, history)) or stop
            if stop and epoch < epochs:
                history.stopped_epoch = epoch
                break

    if early_stopping is not None:
        history.best_epoch = early_stopping.best_epoch
        if early_stopping.best_state is not None:
            model.load_state_dict(early_stopping.best_state)
    return history


def _live_curves(epochs):
    """A LiveHistory when curves can be drawn here (a notebook kernel, not the autograder), else None."""
    if os.environ.get("NBGRADER_EXECUTION"):  # autograde or validate: nobody watches, keep it quiet and fast
        return None
    from labkit.plot import LiveHistory, in_notebook
    return LiveHistory(epochs) if in_notebook() else None


# --------------------------------------------------------------------------- checkpoints

def _plain(value, what):
    """Convert numbers to python floats/ints so torch.load(weights_only=True) accepts the file."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic, torch.Tensor)) and value.ndim == 0:
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(item, what) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item, what) for key, item in value.items()}
    raise TypeError(f"{what} must hold plain python values (numbers, strings, lists, dicts), "
                    f"got {type(value).__name__}")


def _labkit_version() -> str:
    import labkit  # imported here: labkit/__init__.py may import this module
    try:
        return importlib.metadata.version("labkit")
    except importlib.metadata.PackageNotFoundError:  # used from a checkout, not installed
        return getattr(labkit, "__version__", "unknown")


def save_model(model: nn.Module, path, *, arch=None, epoch=None, metrics=None, **extra) -> Path:
    """Save weights and metadata to `path` (parent folders are created); return the path.

    The file holds {"state_dict", "meta"}; meta has "arch" (default: the model's
    class name), "class", "epoch", "metrics", "extra", "labkit_version" and
    "torch_version", all plain python values, so `torch.load(path, weights_only=True)` works.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"arch": str(arch or type(model).__name__), "class": type(model).__name__,
            "epoch": _plain(epoch, "epoch"),
            "metrics": {str(key): float(value) for key, value in (metrics or {}).items()},
            "extra": _plain(extra, "extra keyword arguments"),
            # str(): torch.__version__ is a str subclass that weights_only loading refuses
            "labkit_version": str(_labkit_version()), "torch_version": str(torch.__version__)}
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "meta": meta}, path)
    return path


def _read(path) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"no saved model at '{path}' (absolute: {Path(path).resolve()})")
    return torch.load(path, map_location="cpu", weights_only=True)


def read_metadata(path) -> dict:
    """The "meta" dict written by `save_model`."""
    checkpoint = _read(path)
    if "meta" not in checkpoint:
        raise ValueError(f"'{path}' was not written by labkit.train.save_model (no metadata)")
    return checkpoint["meta"]


def load_model(path, model: nn.Module) -> nn.Module:
    """Load weights saved by `save_model` (or a bare state_dict) into `model` and return it.

    Raises ValueError if the file was saved from another class or the
    parameter names/shapes differ (e.g. different layer sizes).
    """
    checkpoint = _read(path)
    state, meta = checkpoint.get("state_dict", checkpoint), checkpoint.get("meta", {})
    name = type(model).__name__
    if meta.get("class", name) != name:
        raise ValueError(f"'{path}' holds a {meta['class']} but you passed a {name}; "
                         f"build a {meta['class']} with the same arguments and load into it")
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state.items()}
    problems = [f"  missing in file:  {key} (expected {expected[key]})"
                for key in expected if key not in found]
    problems += [f"  not in model:     {key} (found {found[key]})"
                 for key in found if key not in expected]
    problems += [f"  shape mismatch:   {key}: expected {expected[key]}, found {found[key]}"
                 for key in expected if key in found and expected[key] != found[key]]
    if problems:
        saved = f" (saved arch: {meta['arch']!r}, extra: {meta.get('extra')})" if meta else ""
        raise ValueError(f"the weights in '{path}' do not fit this {name}:\n" + "\n".join(problems)
                         + f"\n  hint: build the model with the same arguments as when it was saved{saved}")
    model.load_state_dict(state)
    return model

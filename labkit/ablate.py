"""Ablation studies: train one model per configuration, record the results, cache them on disk.

    ab = Ablation(LeNet5, base={"activation": "tanh", "epochs": 20, "lr": 1e-3, ...},
                  train=train, test=test, cache_dir="results/lenet")
    by_pool = ab.sweep("pooling", ["avg", "max"])      # one factor at a time, from the base
    by_pool                                            # renders a table in a notebook
    by_pool.plot()                                     # test accuracy per value of the factor
    ab.grid(lr=[1e-3, 1e-2], step_size=[100, 800])     # every combination

A configuration is one flat dict.  The training keys below are used by the
runner; every other key is passed to ``build_model(**model_options)``:

    epochs, batch_size, lr, optimizer ("adam" | "sgd" | "rmsprop" | "adadelta"), momentum,
    weight_decay, loss ("cross_entropy" | "mse" | "multi_margin"),
    step_size (StepLR step in iterations, None for no scheduler), gamma,
    subset (train on this many images), seed,
    normalize ((mean, std) to standardise the pixels, as ``split.loader(normalize=)``; None: [0, 1])

and optional keys, each part of a configuration only where it is given (so the
configurations, and the cache keys, of runs without them stay what they were):

    patience (early stopping on the validation loss, best weights restored; needs ``val``)
    schedule ("onecycle": ``OneCycleLR`` up to ``lr`` and down again over the whole run;
              "cosine": ``CosineAnnealingLR`` from ``lr`` to 0; both step every batch,
              and neither goes with ``step_size``)
    augment ("hflip": each training image is flipped left-right with probability 1/2,
             drawn from a generator seeded with ``seed``)

A run whose loss becomes NaN or infinite (``TrainingDiverged``) is recorded as
diverged (``run.diverged``, accuracy NaN) instead of stopping the sweep.  With
``Ablation(..., metric="val_acc")`` runs are compared on their best validation
accuracy (tables, ``best()``, plots) instead of the test accuracy.

Each finished run is written to ``cache_dir`` as JSON under a key made from
the configuration and the source code of the model, so re-running a notebook
is instant, an interrupted sweep resumes where it stopped, and editing the
model's code invalidates its old results.  Nothing is cached without a
``cache_dir``.  Several processes may share one ``cache_dir`` (also on a shared
disk): a run being trained by one is skipped by the others (an OS lock on a
``.lock`` file next to it, through ``filelock``; it goes when its process does,
however that ends), which come back for its result at the end, so N processes
running the same notebook split its runs between them.

Runs elsewhere: ``Ablation(..., executor=...)`` trains the configurations of each
``sweep``/``grid``/``compare`` side by side on a ``concurrent.futures.Executor``
(e.g. ``ProcessPoolExecutor``, whose model builder must be importable) or on a Dask
cluster: ``executor="tcp://HOST:8786"`` (a scheduler's address) or a
``distributed.Client``, whose workers also take a builder defined in a notebook cell.
The default is the ``LABKIT_CLUSTER`` environment variable (an address), else here, one
run after the other (always here while nbgrader grades the notebook; ``retrain`` always
trains here).  Only the training leaves: this process reads the reference and
the cache, holds each run's lock, writes each finished run to the cache as it arrives
and keeps ``runs`` in order, so the results and the cache files are those of a local
run.  A Dask client gets the data once (``scatter``, to every worker), an Executor with
every run.  The worker picks its device (``device=None``: a GPU worker trains on CUDA);
``live`` curves are drawn only for runs trained here.

Recorded results: ``save_runs(path, runs)`` writes runs to one JSON file and
``Ablation(..., reference=path)`` takes every configuration found there (same
model name, same configuration) from the file instead of training it.  Lab 5
ships its full-mode results this way, so students see the full tables without
hours of training.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import inspect
import itertools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from torch import nn
from tqdm.auto import tqdm

from labkit.train import EarlyStopping, History, TrainingDiverged, evaluate, fit, set_seed

__all__ = ["Ablation", "CLUSTER_ENV", "METRICS", "OPTIONAL_TRAINING_DEFAULTS", "Results", "Run", "TRAINING_KEYS",
           "connect_cluster", "default_cache_dir", "load_runs", "make_loss", "make_optimizer", "reference_path",
           "save_runs"]

FORMAT = "labkit-ablation-runs/1"
CLUSTER_ENV = "LABKIT_CLUSTER"  # a Dask scheduler's address: where Ablations train by default
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

TRAINING_DEFAULTS = {
    "epochs": 1, "batch_size": 100, "lr": 1e-3, "optimizer": "adam", "momentum": 0.0,
    "weight_decay": 0.0, "loss": "cross_entropy", "step_size": None, "gamma": 0.9,
    "subset": None, "seed": 0, "normalize": None,
}
# Training keys that are left out of a configuration unless given (and dropped when given at their
# default): adding one must not change the configurations, and so the cache keys, of existing runs.
OPTIONAL_TRAINING_DEFAULTS = {"patience": None, "schedule": None, "augment": None}
SCHEDULES = ("onecycle", "cosine")
AUGMENTATIONS = ("hflip",)
TRAINING_KEYS = frozenset(TRAINING_DEFAULTS) | frozenset(OPTIONAL_TRAINING_DEFAULTS)
METRICS = {"test_acc": "test accuracy", "val_acc": "best validation accuracy"}


def make_optimizer(name: str, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
    """An optimizer by name: "adam", "sgd", "rmsprop" or "adadelta" (any case); ``momentum`` is used
    by SGD and RMSprop only."""
    kinds = {"adam": lambda: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay),
             "sgd": lambda: torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay),
             "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr, momentum=momentum,
                                                    weight_decay=weight_decay),
             "adadelta": lambda: torch.optim.Adadelta(params, lr=lr, weight_decay=weight_decay)}
    if name.lower() not in kinds:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(kinds)}")
    return kinds[name.lower()]()


class _MSEOnOneHot(nn.Module):
    """MSE between the model's outputs (softmax probabilities) and one-hot targets."""

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        one_hot = nn.functional.one_hot(targets, outputs.shape[1]).to(outputs.dtype)
        return nn.functional.mse_loss(outputs, one_hot)


def make_loss(name: str) -> nn.Module:
    """A loss by name: "cross_entropy", "mse" (on one-hot targets; the model should end in a
    softmax) or "multi_margin" (multi-class hinge loss)."""
    kinds = {"cross_entropy": nn.CrossEntropyLoss, "mse": _MSEOnOneHot, "multi_margin": nn.MultiMarginLoss}
    if name not in kinds:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(kinds)}")
    return kinds[name]()


def _label(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _settings(settings: dict) -> str:
    """``{"lr": 0.01, "hidden": 8}`` -> ``"lr=0.01, hidden=8"``."""
    return ", ".join(f"{k}={v}" for k, v in settings.items())


@dataclass
class Run:
    """One trained configuration: what was run and what came out.

    ``diverged``: the loss became NaN or infinite (accuracies and loss are NaN, ``history``
    holds the epochs finished before).  ``best_epoch`` / ``stopped_epoch``: as in ``History``,
    with early stopping (``patience``).
    """

    config: dict
    test_acc: float
    test_loss: float
    params: int
    seconds: float
    history: dict = field(repr=False)  # History.to_dict()
    model: str = ""  # the name of the model builder, e.g. "LeNet5"
    cached: bool = field(default=False, compare=False)
    recorded: bool = field(default=False, compare=False)  # read from a reference file: its time is not shown
    diverged: bool = False
    best_epoch: int | None = None
    stopped_epoch: int | None = None

    @property
    def curves(self) -> History:
        history = History.from_dict(self.history, name=self.label())
        history.best_epoch, history.stopped_epoch = self.best_epoch, self.stopped_epoch
        return history

    @property
    def best_val_acc(self) -> float:
        """The highest validation accuracy of any epoch (NaN without a validation split, or if it diverged)."""
        values = [v for v in self.history.get("val_acc", []) if v is not None]
        return max(values) if values and not self.diverged else math.nan

    def score(self, metric: str = "test_acc") -> float:
        """``test_acc`` or ``best_val_acc`` (metric "val_acc"); NaN for a run that diverged."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        return self.best_val_acc if metric == "val_acc" else (math.nan if self.diverged else self.test_acc)

    def __post_init__(self):  # JSON stores tuples (e.g. channel widths) as lists: make them tuples again
        self.config = {k: tuple(v) if isinstance(v, list) else v for k, v in self.config.items()}

    def label(self, keys=None) -> str:
        keys = keys if keys is not None else list(self.config)
        return _settings({k: self.config.get(k, OPTIONAL_TRAINING_DEFAULTS.get(k)) for k in keys})


def _ranked(score: float) -> float:
    return -math.inf if math.isnan(score) else score


class Results(list):
    """The runs of a sweep or grid, in order.  Renders as a table in a notebook.

    ``metric`` is what the runs are compared on: "test_acc" (the test accuracy), or "val_acc"
    (the best validation accuracy of any epoch: choose on the validation split, not the test set).
    """

    def __init__(self, runs, factors=(), metric: str = "test_acc"):
        super().__init__(runs)
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        self.factors = list(factors)
        self.metric = metric

    def best(self) -> Run:
        """The run with the highest score on the metric (test accuracy by default); runs that diverged last."""
        return max(self, key=lambda run: _ranked(run.score(self.metric)))

    def _factor_values(self, run: Run) -> dict:
        return {f: run.config.get(f, OPTIONAL_TRAINING_DEFAULTS.get(f)) for f in self.factors}

    def rows(self) -> list:
        """One dict per run: the factors, test accuracy (%), parameters, seconds ("–" for a run read from a
        reference file: its time was measured elsewhere), epochs.  With the metric
        "val_acc": the best and the last validation accuracy (%) and the last training loss instead of
        the test accuracy.  A run that diverged says "diverged"."""
        rows = []
        for run in self:
            history = run.history
            if self.metric == "val_acc":
                last = (history.get("val_acc") or [math.nan])[-1]
                scores = {"best val acc (%)": round(100 * run.best_val_acc, 2),
                          "last val acc (%)": round(100 * last, 2),
                          "last train loss": round((history.get("train_loss") or [math.nan])[-1], 4)}
            else:
                scores = {"test acc (%)": round(100 * run.test_acc, 2)}
            if run.diverged:
                scores = dict.fromkeys(scores, "–")
                scores[next(iter(scores))] = "diverged"
            # A recorded run's time was taken on another machine, under another load: not a time to compare.
            rows.append({**self._factor_values(run), **scores, "params": run.params,
                         "time (s)": "–" if run.recorded else round(run.seconds, 1),
                         "epochs": len(history.get("epoch", []))})
        return rows

    def table(self) -> str:
        """The results as a Markdown table (the best run in bold)."""
        rows = self.rows()
        if not rows:
            return "(no runs)"
        header = list(rows[0])
        best = self.index(self.best())
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for i, row in enumerate(rows):
            cells = [str(row[h]) for h in header]
            lines.append("| " + " | ".join(f"**{c}**" if i == best else c for c in cells) + " |")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()

    def plot(self, factor: str | None = None, by: str | None = None, title: str | None = None, ax=None,
             bars: bool | None = None):
        """The metric (test accuracy by default) per value of one factor: a line for numbers, bars
        otherwise (``bars=True`` or ``False`` chooses); with ``by`` (a grid's other factor), one line
        per value of ``by``.  Runs that diverged are left out.  ``title=""``: no title.  ``ax``: draw
        into this matplotlib Axes, e.g. one panel of a figure with several; returns the figure."""
        from matplotlib.figure import Figure

        factor = factor or (self.factors[0] if self.factors else None)
        if factor is None:
            raise ValueError("plot(factor=...) needs the name of the factor to put on the x axis")
        finished = [run for run in self if not math.isnan(run.score(self.metric))]
        groups = {}
        for run in finished:
            groups.setdefault(run.config.get(by) if by else None, []).append(run)
        values = [run.config.get(factor) for run in finished]
        numeric = bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        lines = numeric if bars is None else not bars
        if ax is None:
            fig = Figure(figsize=(6, 3.5), layout="constrained")
            ax = fig.add_subplot()
        fig = ax.figure
        for group, runs in groups.items():
            xs = [run.config.get(factor) if numeric and lines else _label(run.config.get(factor)) for run in runs]
            accuracies = [100 * run.score(self.metric) for run in runs]
            label = f"{by}={group}" if by else None
            if lines:
                ax.plot(xs, accuracies, "o-", label=label)
            else:
                ax.bar(xs, accuracies, color="#0072B2", label=label)
                ax.set_ylim(min(accuracies) - 2, min(100, max(accuracies) + 1))
            for x, a in zip(xs, accuracies, strict=True):
                ax.annotate(f"{a:.2f}", (x, a), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
        if numeric and lines and min(values) > 0 and max(values) / min(values) >= 8:
            ax.set_xscale("log", base=2)
            ticks = sorted(set(values))
            ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
            ax.minorticks_off()
        if by:
            ax.legend()
        ax.set_xlabel(factor)
        ax.set_ylabel(f"{METRICS[self.metric]} (%)")
        ax.set_title(f"{METRICS[self.metric]} by {factor}" if title is None else title)
        ax.grid(alpha=0.3)
        return fig

    def plot_curves(self, metrics=("loss", "accuracy"), runs=None, labels=None, title=None):
        """Training curves of the selected runs (all by default), one colour per run; runs that
        diverged before finishing an epoch have no curve and are left out.

        Each run is labelled by its factors, or, for runs collected by hand, by the settings in
        which it differs from the first run (which is labelled "base"); ``labels`` names them yourself.
        """
        from labkit.plot import plot_history

        chosen = list(self) if runs is None else [self[i] if isinstance(i, int) else i for i in runs]
        if labels is None:
            if self.factors:
                labels = [run.label(self.factors) for run in chosen]
            else:
                first = chosen[0].config
                labels = [run.label([k for k in run.config if run.config[k] != first.get(k)]) or "base"
                          for run in chosen]
        if len(labels) != len(chosen) or len(set(labels)) != len(labels):
            raise ValueError(f"need one distinct label per run: {len(chosen)} runs, labels {labels}")
        curves = {label: run.curves for label, run in zip(labels, chosen, strict=True) if run.history.get("epoch")}
        return plot_history(curves, metrics=metrics, title=title)


def _source(obj) -> str:
    """The source code that defines ``obj``.  For a class: the source of each of its own methods
    (this also works for a class defined in a notebook cell, where inspect cannot find the class
    itself, so editing a model's ``__init__`` or ``forward`` in a notebook changes the key)."""
    if inspect.isclass(obj):
        parts = [f"class {obj.__qualname__}({', '.join(b.__qualname__ for b in obj.__bases__)})"]
        for _, member in sorted(vars(obj).items()):
            func = getattr(member, "__func__", member)
            if inspect.isfunction(func):
                parts.append(_source(func))
        return "\n".join(parts)
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):  # defined where the source is unavailable: use its name
        return getattr(obj, "__qualname__", repr(obj))


def default_cache_dir(lab: str) -> Path | None:
    """Where a lab caches its runs: ``<labkit data folder>/ablate/<lab>``, or None (no cache)
    while nbgrader grades the notebook, so every graded notebook trains its own models."""
    if os.environ.get("NBGRADER_EXECUTION"):
        return None
    from labkit.data import data_dir

    return data_dir() / "ablate" / lab


def _config_id(model: str, config: dict) -> str:
    return json.dumps({"model": model, "config": config}, sort_keys=True, default=str)


def _record(run: Run) -> dict:
    record = asdict(run)
    record.pop("cached")
    record.pop("recorded")
    for key in ("diverged", "best_epoch", "stopped_epoch"):  # only where set: older files stay as they were
        if not record[key]:
            record.pop(key)
    return record


def save_runs(path: str | os.PathLike, runs) -> Path:
    """Write ``runs`` (Run objects, e.g. ``ablation.runs``) to one JSON file; return its path.

    Later runs of the same model and configuration replace earlier ones.
    """
    by_id = {_config_id(run.model, run.config): _record(run) for run in runs}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.partial")
    tmp.write_text(json.dumps({"format": FORMAT, "runs": list(by_id.values())}, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return path


def load_runs(path: str | os.PathLike) -> Results:
    """The runs saved by ``save_runs``, in order."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no recorded results at {path}: run the sweeps (they write it), "
                                f"or pass reference=None to train every configuration") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a labkit results file (expected format {FORMAT!r}); "
                         f"it should be written by labkit.ablate.save_runs")
    return Results([Run(**record, cached=True) for record in data["runs"]])


def reference_path(lab: str) -> Path:
    """The recorded full-mode results shipped with labkit for ``lab`` (e.g. "05_lenet")."""
    return REFERENCE_DIR / f"{lab}.json"


class Ablation:
    """Train ``build_model`` under many configurations derived from ``base``.

    ``train`` and ``test`` are labkit Splits (or anything with ``.loader()``);
    with ``val`` (a Split), each run also records validation loss and accuracy
    per epoch.  ``cache_dir`` keeps finished runs, ``reference`` (a path or
    runs) supplies recorded ones (see the module docstring).  ``runs`` lists
    every run returned so far, in order, for ``save_runs``.  ``metric`` ("test_acc"
    or "val_acc") is what the returned Results compare the runs on.  With
    ``live=True`` every run that is trained here (not read from the cache or the
    reference) draws its curves as it trains (``fit(..., live=True)``).  ``executor``
    (an Executor, a ``distributed.Client`` or a Dask scheduler's address; default
    ``$LABKIT_CLUSTER``) trains each call's runs side by side there (see the module docstring).
    """

    def __init__(self, build_model, base: dict, train, test, val=None,
                 cache_dir: str | os.PathLike | None = None, progress: bool = True, device=None,
                 reference=None, poll_seconds: float = 5.0, metric: str = "test_acc", live: bool = False,
                 executor=None):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if metric == "val_acc" and val is None:
            raise ValueError('metric="val_acc" needs a validation split: Ablation(..., val=val)')
        self.build_model, self.train, self.test, self.val, self.metric = build_model, train, test, val, metric
        self.base = _configuration(TRAINING_DEFAULTS, base)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.progress, self.device, self.poll_seconds, self.live = progress, device, poll_seconds, live
        self.name = getattr(build_model, "__name__", type(build_model).__name__)
        recorded = load_runs(reference) if isinstance(reference, (str, os.PathLike)) else (reference or [])
        self.reference = {_config_id(run.model, run.config): replace(run, recorded=True) for run in recorded}
        self.runs = []
        if executor is None and not os.environ.get("NBGRADER_EXECUTION"):  # a graded notebook trains in its kernel
            executor = os.environ.get(CLUSTER_ENV) or None
        self.executor = executor
        self._sent = {}  # id(client) -> the data scattered to its workers

    # -- what to run
    def sweep(self, factor: str, values, **fixed) -> Results:
        """One factor at a time: the base configuration (plus ``fixed``) with ``factor`` set to each value."""
        return self._run_all([{**fixed, factor: value} for value in values], [factor], f"sweep {factor}")

    def grid(self, **factors) -> Results:
        """Every combination of the given factors' values, e.g. ``grid(lr=[...], step_size=[...])``."""
        names = list(factors)
        combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*factors.values())]
        return self._run_all(combos, names, "grid " + " x ".join(names))

    def compare(self, *overrides: dict, factors=None) -> Results:
        """Named variants of the base, e.g. ``compare({"loss": "cross_entropy"}, {"loss": "mse",
        "softmax_output": True})``; the table shows ``factors`` (default: every key that varies)."""
        keys = list(factors) if factors is not None else list(dict.fromkeys(k for o in overrides for k in o))
        return self._run_all(list(overrides), keys, "compare " + ", ".join(keys))

    def run(self, **overrides) -> Run:
        """One configuration: the base with ``overrides``."""
        return self._run_all([overrides], list(overrides), "run")[0]

    def retrain(self, run: Run, **overrides) -> Run:
        """``run``'s configuration with ``overrides`` (e.g. ``epochs=1``), trained by this Ablation's
        model builder: never read from the reference file (only from the cache, whose key holds the
        model's code).  A graded check in full mode uses it: the recorded runs fill the tables, and the
        check trains the student's own model for a short run.  Not added to ``runs``."""
        self._refuse_unknown_keys([overrides])
        config = _configuration(run.config, overrides)
        _check_options(config, self.val is not None)
        return self._find_or_train(config, wait=True, recorded=False)

    def _refuse_unknown_keys(self, overrides: list) -> None:
        unknown = [k for o in overrides for k in o if k not in self.base and k not in TRAINING_KEYS]
        if unknown:
            raise ValueError(f"unknown configuration key(s) {sorted(set(unknown))}; the base has "
                             f"{', '.join(sorted(self.base))}")

    def _run_all(self, overrides: list, factors: list, what: str) -> Results:
        self._refuse_unknown_keys(overrides)
        configs = [_configuration(self.base, override) for override in overrides]
        for config in configs:
            _check_options(config, self.val is not None)
        runs, waiting = [None] * len(overrides), []
        with tqdm(total=len(overrides), desc=what, unit="run", disable=not self.progress) as bar:
            if self.executor is not None:
                waiting = self._run_elsewhere(configs, runs, bar)
            else:
                for i, config in enumerate(configs):
                    bar.set_postfix_str(_settings(overrides[i]), refresh=True)
                    runs[i] = self._find_or_train(config, wait=False)
                    if runs[i] is None:  # another process is training it: come back at the end
                        waiting.append(i)
                    else:
                        bar.update()
            for i in waiting:
                bar.set_postfix_str("waiting for another process: " + _settings(overrides[i]), refresh=True)
                runs[i] = self._find_or_train(configs[i], wait=True)
                bar.update()
        self.runs.extend(runs)
        return Results(runs, factors, metric=self.metric)

    def _run_elsewhere(self, configs: list, runs: list, bar) -> list:
        """Fill ``runs`` from the reference and the cache, and train the rest on the executor, side by
        side; return the indices another process is training (``_run_all`` waits for them)."""
        waiting, first, train, futures, locks = [], {}, [], {}, []
        try:
            for i, config in enumerate(configs):
                same = first.setdefault(_config_id(self.name, config), i)
                if same != i:  # the same configuration twice in one call: trained once
                    continue
                found, path, lock = self._claim(config)
                if found is not None:
                    runs[i] = found
                    bar.update()
                elif lock is False:
                    waiting.append(i)
                else:
                    locks.append(lock)
                    train.append((i, path))
            if train:  # connect (and send the data) only when there is something to train
                executor, data = self._connect()
                for i, path in train:
                    futures[executor.submit(_train_elsewhere, self.build_model, self.name, *data, configs[i],
                                            self.device)] = (i, path)
                bar.set_postfix_str(f"{len(futures)} run(s) training elsewhere", refresh=True)
            for future in concurrent.futures.as_completed(futures):
                i, path = futures[future]
                runs[i] = future.result()
                if path is not None:
                    _write_run(path, runs[i])
                bar.update()
        finally:
            for future in futures:
                future.cancel()
            for lock in locks:
                if lock is not None:
                    lock.release()
        for i, config in enumerate(configs):
            same = first[_config_id(self.name, config)]
            if same != i:
                runs[i] = runs[same]
                bar.update()
        return waiting

    def _connect(self) -> tuple:
        """(an Executor to submit to, the data to pass it): a Dask client's workers get the data once."""
        executor = self.executor
        if isinstance(executor, str):
            executor = _dask_client(executor)
        data = [self.train, self.test, self.val]
        if hasattr(executor, "scatter") and hasattr(executor, "get_executor"):  # a distributed.Client
            if id(executor) not in self._sent:
                self._sent[id(executor)] = executor.scatter(data, broadcast=True, hash=False)
            return executor.get_executor(pure=False), self._sent[id(executor)]
        if not callable(getattr(executor, "submit", None)):
            raise TypeError(f"executor must be a concurrent.futures.Executor, a distributed.Client or a Dask "
                            f"scheduler's address (tcp://HOST:PORT), not {type(executor).__name__}")
        return executor, data

    def _claim(self, config: dict) -> tuple:
        """(recorded or cached run, None, None), (None, cache path or None, held lock or None) for a run
        to train, or (None, None, False) when another process holds its lock."""
        found = self.reference.get(_config_id(self.name, config))
        if found is not None:
            return found, None, None
        if self.cache_dir is None:
            return None, None, None
        set_seed(config["seed"])  # the model is built here only for its cache key
        path = self.cache_dir / f"{self.key(config, self.build_model(**self.model_options(config)))}.json"
        cached = self._read_cached(path)
        if cached is not None:
            return cached, None, None
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path.with_suffix(".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return None, None, False
        cached = self._read_cached(path)  # finished between our look and our claim
        if cached is not None:
            lock.release()
            return cached, None, None
        return None, path, lock

    # -- how one configuration runs
    def model_options(self, config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in TRAINING_KEYS}

    def key(self, config: dict, model: nn.Module) -> str:
        """Cache key: the configuration and the source code of the builder and the model's class."""
        sources = [_source(self.build_model), _source(type(model))]
        blob = json.dumps({"config": config, "sources": sources}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def _find_or_train(self, config: dict, wait: bool, recorded: bool = True) -> Run | None:
        """The run of ``config``: recorded (unless ``recorded`` is False), cached or trained now.  None
        when another process is training it and ``wait`` is False; with ``wait``, poll until its result
        appears."""
        found = self.reference.get(_config_id(self.name, config)) if recorded else None
        if found is not None:
            return found
        set_seed(config["seed"])
        model = self.build_model(**self.model_options(config))
        if self.cache_dir is None:
            return self._train(model, config)
        path = self.cache_dir / f"{self.key(config, model)}.json"
        while True:
            cached = self._read_cached(path)
            if cached is not None:
                return cached
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(path.with_suffix(".lock"))
            try:
                lock.acquire(timeout=0)
                break
            except Timeout:  # another process trains it
                if not wait:
                    return None
                time.sleep(self.poll_seconds)
        try:
            cached = self._read_cached(path)  # finished between our look and our claim
            if cached is not None:
                return cached
            run = self._train(model, config)
            _write_run(path, run)
            return run
        finally:
            lock.release()

    @staticmethod
    def _read_cached(path: Path) -> Run | None:
        if not path.is_file():
            return None
        try:
            return Run(**json.loads(path.read_text()), cached=True)
        except (ValueError, TypeError):  # a damaged or outdated file is simply run again
            return None

    def _train(self, model: nn.Module, config: dict) -> Run:
        train = self.train.subset(config["subset"], seed=config["seed"]) if config["subset"] else self.train
        scale = {"normalize": tuple(config["normalize"])} if config["normalize"] else {}
        augment = {"transform": _horizontal_flips(config["seed"])} if config.get("augment") == "hflip" else {}
        loader = train.loader(config["batch_size"], shuffle=True, seed=config["seed"], **scale, **augment)
        optimizer = make_optimizer(config["optimizer"], model.parameters(), config["lr"],
                                   config["momentum"], config["weight_decay"])
        scheduler = _scheduler(optimizer, config, steps=config["epochs"] * len(loader))
        patience = config.get("patience")
        early = EarlyStopping(monitor="val_loss", patience=patience) if patience else None
        loss_fn = make_loss(config["loss"])
        params = sum(p.numel() for p in model.parameters())
        finished = []  # fit's History, seen by a callback: the finished epochs of a run that diverges

        def remember(_model, history):
            if not finished:
                finished.append(history)

        start = time.perf_counter()
        val_loader = self.val.loader(1000, **scale) if self.val is not None else None
        try:
            history = fit(model, loader, epochs=config["epochs"], optimizer=optimizer, loss_fn=loss_fn,
                          val_loader=val_loader, scheduler=scheduler, scheduler_interval="batch",
                          early_stopping=early, callbacks=remember,
                          progress=False, device=self.device, live=self.live)
        except TrainingDiverged:
            return Run(config=config, test_acc=math.nan, test_loss=math.nan, params=params,
                       seconds=time.perf_counter() - start, history=finished[0].to_dict() if finished else {},
                       model=self.name, diverged=True)
        seconds = time.perf_counter() - start
        result = evaluate(model, self.test.loader(1000, **scale), loss_fn)
        return Run(config=config, test_acc=result.accuracy, test_loss=result.loss, params=params, seconds=seconds,
                   history=history.to_dict(), model=self.name, best_epoch=history.best_epoch,
                   stopped_epoch=history.stopped_epoch)


def _write_run(path: Path, run: Run) -> None:
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps(_record(run), indent=1, default=str))
    os.replace(tmp, path)  # a run interrupted while writing leaves no half file behind


def _train_elsewhere(build_model, name: str, train, test, val, config: dict, device) -> Run:
    """One run, on an executor's worker: seeded and built as ``_find_or_train`` does here."""
    ablation = Ablation(build_model, base={}, train=train, test=test, val=val, progress=False, device=device)
    ablation.name = name
    set_seed(config["seed"])
    return ablation._train(build_model(**ablation.model_options(config)), config)


def connect_cluster(address: str):
    """A new ``distributed.Client`` of the Dask scheduler at ``address``, or an error saying what to do."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(f"training on the Dask cluster at {address} needs Dask, which is not installed here: "
                          f'pip install "dask[distributed]" (or unset {CLUSTER_ENV} to train here)') from None
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address} ({exc}); check that `dask scheduler` "
                              f"runs there and listens on that port, or unset {CLUSTER_ENV} to train here") from None


_clients = {}


def _dask_client(address: str):
    """One client per scheduler address for this process."""
    if address not in _clients or _clients[address].status in ("closing", "closed"):
        _clients[address] = connect_cluster(address)
    return _clients[address]


def _scheduler(optimizer, config: dict, steps: int):
    """The learning-rate schedule of ``config`` (stepped every batch), or None."""
    if config["step_size"]:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config["step_size"], gamma=config["gamma"])
    if config.get("schedule") == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config["lr"], total_steps=steps)
    if config.get("schedule") == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return None


def _horizontal_flips(seed: int):
    """A batch transform flipping each image left-right with probability 1/2 (its own seeded generator)."""
    generator = torch.Generator().manual_seed(seed)

    def flip(batch: torch.Tensor) -> torch.Tensor:
        chosen = torch.rand(len(batch), generator=generator) < 0.5
        batch[chosen] = batch[chosen].flip(-1)  # each batch is its own copy (TensorLoader): safe in place
        return batch

    return flip


def _check_options(config: dict, has_val: bool) -> None:
    """Refuse optional training keys that cannot run, before anything trains."""
    if config.get("patience") and not has_val:
        raise ValueError("early stopping (patience) watches the validation loss: Ablation(..., val=val)")
    schedule, augment = config.get("schedule"), config.get("augment")
    if schedule is not None and schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)} (or None)")
    if schedule is not None and config["step_size"]:
        raise ValueError(f"schedule={schedule!r} and step_size={config['step_size']} are two learning-rate "
                         "schedules: give one of them")
    if augment is not None and augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augment {augment!r}; choose one of {', '.join(AUGMENTATIONS)} (or None)")


def _configuration(base: dict, override: dict) -> dict:
    """``base`` with ``override``, without the optional training keys that are at their default."""
    config = {**base, **override}
    return {k: v for k, v in config.items()
            if not (k in OPTIONAL_TRAINING_DEFAULTS and v == OPTIONAL_TRAINING_DEFAULTS[k])}

"""Ablation studies: train one model per configuration, record the results, cache them on disk.

    ab = Ablation(LeNet5, base={"activation": "tanh", "epochs": 20, "lr": 1e-3, ...},
                  train=train, test=test, cache_dir="results/lenet")
    by_pool = ab.sweep("pooling", ["avg", "max"])      # one factor at a time, from the base
    by_pool                                            # renders a table in a notebook
    by_pool.plot()                                     # test accuracy per value of the factor
    ab.grid(lr=[1e-3, 1e-2], step_size=[100, 800])     # every combination

A configuration is one flat dict.  The training keys below are used by the
runner; every other key is passed to ``build_model(**model_options)``:

    epochs, batch_size, lr, optimizer ("adam" | "sgd" | "rmsprop"), momentum,
    weight_decay, loss ("cross_entropy" | "mse" | "multi_margin"),
    step_size (StepLR step in iterations, None for no scheduler), gamma,
    subset (train on this many images), seed

Each finished run is written to ``cache_dir`` as JSON under a key made from
the configuration and the source code of the model, so re-running a notebook
is instant, an interrupted sweep resumes where it stopped, and editing the
model's code invalidates its old results.  Nothing is cached without a
``cache_dir``.
"""
from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from labkit.train import History, evaluate, fit, set_seed

__all__ = ["Ablation", "Results", "Run", "TRAINING_KEYS", "make_loss", "make_optimizer"]

TRAINING_DEFAULTS = {
    "epochs": 1, "batch_size": 100, "lr": 1e-3, "optimizer": "adam", "momentum": 0.0,
    "weight_decay": 0.0, "loss": "cross_entropy", "step_size": None, "gamma": 0.9,
    "subset": None, "seed": 0,
}
TRAINING_KEYS = frozenset(TRAINING_DEFAULTS)


def make_optimizer(name: str, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
    """An optimizer by name: "adam", "sgd" or "rmsprop"."""
    kinds = {"adam": lambda: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay),
             "sgd": lambda: torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay),
             "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr, momentum=momentum,
                                                    weight_decay=weight_decay)}
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


@dataclass
class Run:
    """One trained configuration: what was run and what came out."""

    config: dict
    test_acc: float
    test_loss: float
    params: int
    seconds: float
    history: dict = field(repr=False)  # History.to_dict()
    cached: bool = field(default=False, compare=False)

    @property
    def curves(self) -> History:
        return History.from_dict(self.history, name=self.label())

    def label(self, keys=None) -> str:
        keys = keys if keys is not None else list(self.config)
        return ", ".join(f"{k}={self.config[k]}" for k in keys)


class Results(list):
    """The runs of a sweep or grid, in order.  Renders as a table in a notebook."""

    def __init__(self, runs, factors=()):
        super().__init__(runs)
        self.factors = list(factors)

    def best(self) -> Run:
        """The run with the highest test accuracy."""
        return max(self, key=lambda run: run.test_acc)

    def rows(self) -> list:
        """One dict per run: the factors, test accuracy (%), parameters, seconds, epochs."""
        return [{**{f: run.config[f] for f in self.factors},
                 "test acc (%)": round(100 * run.test_acc, 2), "params": run.params,
                 "time (s)": round(run.seconds, 1), "epochs": len(run.history.get("epoch", []))}
                for run in self]

    def table(self) -> str:
        """The results as a Markdown table (the best run in bold)."""
        rows = self.rows()
        if not rows:
            return "(no runs)"
        header = list(rows[0])
        best = max(range(len(rows)), key=lambda i: rows[i]["test acc (%)"])
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for i, row in enumerate(rows):
            cells = [str(row[h]) for h in header]
            lines.append("| " + " | ".join(f"**{c}**" if i == best else c for c in cells) + " |")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()

    def plot(self, factor: str | None = None, title: str | None = None):
        """Test accuracy per value of one factor (a line for numbers, bars otherwise)."""
        from matplotlib.figure import Figure

        factor = factor or (self.factors[0] if self.factors else None)
        if factor is None:
            raise ValueError("plot(factor=...) needs the name of the factor to put on the x axis")
        values = [run.config[factor] for run in self]
        accuracies = [100 * run.test_acc for run in self]
        fig = Figure(figsize=(6, 3.5), layout="constrained")
        ax = fig.add_subplot()
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            ax.plot(values, accuracies, "o-")
            if min(values) > 0 and max(values) / min(values) >= 8:
                ax.set_xscale("log", base=2)
        else:
            ax.bar([str(v) for v in values], accuracies, color="#0072B2")
            ax.set_ylim(min(accuracies) - 2, min(100, max(accuracies) + 1))
        for v, a in zip(values if numeric else range(len(values)), accuracies, strict=True):
            ax.annotate(f"{a:.2f}", (v, a), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
        ax.set_xlabel(factor)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title or f"test accuracy by {factor}")
        ax.grid(alpha=0.3)
        return fig

    def plot_curves(self, metrics=("loss", "accuracy"), runs=None):
        """Training curves of the selected runs (all by default), one colour per run."""
        from labkit.plot import plot_history

        chosen = self if runs is None else [self[i] if isinstance(i, int) else i for i in runs]
        keys = self.factors or None
        return plot_history({run.label(keys): run.curves for run in chosen}, metrics=metrics)


class Ablation:
    """Train ``build_model`` under many configurations derived from ``base``.

    ``train`` and ``test`` are labkit Splits (or anything with ``.loader()``);
    with ``val`` (a Split), each run also records validation loss and accuracy
    per epoch.  ``cache_dir`` keeps finished runs (see the module docstring).
    """

    def __init__(self, build_model, base: dict, train, test, val=None,
                 cache_dir: str | os.PathLike | None = None, progress: bool = True, device=None):
        self.build_model, self.train, self.test, self.val = build_model, train, test, val
        self.base = {**TRAINING_DEFAULTS, **base}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.progress, self.device = progress, device

    # -- what to run
    def sweep(self, factor: str, values, **fixed) -> Results:
        """One factor at a time: the base configuration (plus ``fixed``) with ``factor`` set to each value."""
        return self._run_all([{**fixed, factor: value} for value in values], [factor], f"sweep {factor}")

    def grid(self, **factors) -> Results:
        """Every combination of the given factors' values, e.g. ``grid(lr=[...], step_size=[...])``."""
        names = list(factors)
        combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*factors.values())]
        return self._run_all(combos, names, "grid " + " x ".join(names))

    def run(self, **overrides) -> Run:
        """One configuration: the base with ``overrides``."""
        return self._run_all([overrides], list(overrides), "run")[0]

    def _run_all(self, overrides: list, factors: list, what: str) -> Results:
        unknown = [k for o in overrides for k in o if k not in self.base and k not in TRAINING_KEYS]
        if unknown:
            raise ValueError(f"unknown configuration key(s) {sorted(set(unknown))}; the base has "
                             f"{', '.join(sorted(self.base))}")
        runs = []
        with tqdm(overrides, desc=what, unit="run", disable=not self.progress) as bar:
            for override in bar:
                config = {**self.base, **override}
                bar.set_postfix_str(", ".join(f"{k}={v}" for k, v in override.items()), refresh=True)
                runs.append(self._cached_or_trained(config))
        return Results(runs, factors)

    # -- how one configuration runs
    def model_options(self, config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in TRAINING_KEYS}

    def key(self, config: dict, model: nn.Module) -> str:
        """Cache key: the configuration and the source code of the builder and the model's class."""
        sources = []
        for obj in (self.build_model, type(model)):
            try:
                sources.append(inspect.getsource(obj))
            except (OSError, TypeError):  # defined where the source is unavailable: use its name
                sources.append(getattr(obj, "__qualname__", repr(obj)))
        blob = json.dumps({"config": config, "sources": sources}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def _cached_or_trained(self, config: dict) -> Run:
        set_seed(config["seed"])
        model = self.build_model(**self.model_options(config))
        path = self.cache_dir / f"{self.key(config, model)}.json" if self.cache_dir else None
        if path is not None and path.is_file():
            try:
                return Run(**json.loads(path.read_text()), cached=True)
            except (ValueError, TypeError):  # a damaged or outdated file is simply run again
                pass
        run = self._train(model, config)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".partial")
            record = asdict(run)
            record.pop("cached")
            tmp.write_text(json.dumps(record, indent=1, default=str))
            os.replace(tmp, path)  # a run interrupted while writing leaves no half file behind
        return run

    def _train(self, model: nn.Module, config: dict) -> Run:
        train = self.train.subset(config["subset"], seed=config["seed"]) if config["subset"] else self.train
        loader = train.loader(config["batch_size"], shuffle=True, seed=config["seed"])
        optimizer = make_optimizer(config["optimizer"], model.parameters(), config["lr"],
                                   config["momentum"], config["weight_decay"])
        scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, step_size=config["step_size"],
                                                     gamma=config["gamma"])
                     if config["step_size"] else None)
        loss_fn = make_loss(config["loss"])
        start = time.perf_counter()
        val_loader = self.val.loader(1000) if self.val is not None else None
        history = fit(model, loader, epochs=config["epochs"], optimizer=optimizer, loss_fn=loss_fn,
                      val_loader=val_loader, scheduler=scheduler, scheduler_interval="batch",
                      progress=False, device=self.device)
        seconds = time.perf_counter() - start
        result = evaluate(model, self.test.loader(1000), loss_fn)
        return Run(config=config, test_acc=result.accuracy, test_loss=result.loss,
                   params=sum(p.numel() for p in model.parameters()), seconds=seconds,
                   history=history.to_dict())

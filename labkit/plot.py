"""Plots for the labs: training curves, image grids, confusion matrices,
decision boundaries, and functions next to their derivatives.

Every function returns a matplotlib ``Figure`` and draws nothing on screen by
itself. In a notebook, make the figure the last expression of a cell (or call
``display(fig)``) and it appears once; ``fig.savefig("curves.png")`` saves it.

The figures are built with ``matplotlib.figure.Figure`` instead of
``plt.subplots``: pyplot keeps every figure it creates and the notebook shows
those again at the end of the cell, so a returned pyplot figure would appear
twice and unclosed figures would pile up between cells.
"""

import math
from collections.abc import Mapping

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import LinearSegmentedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter

# Okabe & Ito's palette: the colours stay distinct for the common kinds of
# colour blindness. Yellow is last because it is faint on white.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
WRONG_COLOR = "red"
DEFAULT_METRICS = ("loss", "accuracy")


# ---------------------------------------------------------------------------
# Training curves


def plot_history(histories, metrics=DEFAULT_METRICS, title=None):
    """Plot training curves, one axes per metric, epochs (from 1) on the x axis.

    ``histories`` may be a ``History`` (what ``labkit.train.fit`` returns), a
    mapping key -> list of numbers (e.g. ``history.to_dict()``), a list of
    those, or a dict name -> History whose names label the runs.

    ``metrics``: ``"loss"`` plots ``train_loss`` and ``val_loss``,
    ``"accuracy"`` plots ``train_acc`` and ``val_acc``, any other name is
    looked up literally (e.g. ``"lr"``). Training curves are solid, validation
    curves dashed, one colour per run. Accuracies recorded as fractions (0..1)
    are labelled in percent on the axis; the plotted data are the recorded
    values. With the default metrics, accuracy is skipped if no history has
    it; a metric you name that no history recorded is an error.
    """
    runs = _as_runs(histories)
    if isinstance(metrics, str):
        metrics = (metrics,)
    panels = []
    for metric in metrics:
        keys = _metric_keys(metric, runs)
        if keys:
            panels.append((metric, keys))
        elif metrics is not DEFAULT_METRICS:  # only metrics the caller named are required
            raise ValueError(_missing_metric_message(metric, runs))
    if not panels:
        raise ValueError(_missing_metric_message(" / ".join(metrics), runs))

    many_runs = len(runs) > 1
    fig = Figure(figsize=(5 * len(panels) + (1.8 if many_runs else 0), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = _colors(len(runs))
    for ax, (metric, keys) in zip(axes, panels, strict=True):
        for (name, columns), color in zip(runs, colors, strict=True):
            for key in keys:
                if key in columns:
                    _plot_curve(ax, columns, key, name, color)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        # Half an epoch of margin: a one-epoch run still gets an integer tick (1), not 0.95...1.05.
        last_epoch = max(max(columns.get("epoch") or [len(v) for v in columns.values()]) for _, columns in runs)
        ax.set_xlim(0.5, last_epoch + 0.5)
        ax.grid(alpha=0.3)
        if any("acc" in key for key in keys):
            recorded = [v for _, columns in runs for k in keys for v in columns.get(k, ())]
            # A history that already stores percent (e.g. 97.5) keeps its scale.
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1 if np.nanmax(recorded) <= 1 else 100))
        if not many_runs:
            ax.legend()
    if many_runs:
        # One legend for the figure: colour = run, line style = train / val.
        handles = [Line2D([], [], color=c, label=name) for (name, _), c in zip(runs, colors, strict=True)]
        plotted = {key for _, keys in panels for key in keys}
        if any(key.startswith("train_") for key in plotted):
            handles.append(Line2D([], [], color="grey", label="train"))
        if any(key.startswith("val_") for key in plotted):
            handles.append(Line2D([], [], color="grey", linestyle="--", label="val"))
        fig.legend(handles=handles, loc="outside right upper")
    if title is not None:
        fig.suptitle(title)
    return fig


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Notebook, Colab, VS Code), where images can be shown."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveHistory:
    """Training curves that redraw in place in a notebook: what ``fit(..., live=True)`` shows.

    ``update(history)`` after each epoch draws ``plot_history(history)`` with the x axis fixed to
    all ``epochs`` and replaces the previous image with it (IPython's ``display(..., display_id=True)``
    and ``update``): one image per run, no widgets and no ipympl, so it works the same in JupyterLab,
    Jupyter Notebook and Colab.
    """

    def __init__(self, epochs, metrics=DEFAULT_METRICS, title=None):
        self.epochs, self.metrics, self.title = epochs, metrics, title
        self.handle = None

    def figure(self, history):
        done = len(history)
        title = f"{self.title + ': ' if self.title else ''}epoch {done} of {self.epochs}"
        fig = plot_history(history, self.metrics, title=title)
        for ax in fig.axes:
            ax.set_xlim(0.5, max(self.epochs, done) + 0.5)
        return fig

    def update(self, history):
        from IPython.core.pylabtools import print_figure
        from IPython.display import Image, display

        image = Image(data=print_figure(self.figure(history), "png", bbox_inches="tight"), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


def _plot_curve(ax, columns, key, name, color):
    values = columns[key]
    epochs = columns.get("epoch") or range(1, len(values) + 1)
    part = "train" if key.startswith("train_") else "val" if key.startswith("val_") else key
    ax.plot(
        list(epochs)[: len(values)],
        values,
        color=color,
        linestyle="--" if key.startswith("val_") else "-",
        # A one-epoch run would be invisible as a bare line.
        marker="o" if len(values) <= 30 else None,
        markersize=3,
        label=part if name is None else f"{name} ({part})",
    )


def _as_runs(histories):
    """Return a list of (name or None, {key: list of float}), one per run."""
    if isinstance(histories, (Mapping, list, tuple)) and len(histories) == 0:
        raise ValueError(
            "plot_history: got no histories (an empty list or dict)\n"
            "  hint:     pass the History returned by fit(), or a list / dict of them"
        )
    if isinstance(histories, Mapping) and all(_is_history(h) for h in histories.values()):
        return [(str(name), _columns(h)) for name, h in histories.items()]
    if _is_history(histories):
        return [(_name_of(histories), _columns(histories))]
    if isinstance(histories, (list, tuple)):
        runs = []
        for i, history in enumerate(histories):
            if not _is_history(history):
                raise TypeError(_not_a_history_message(history, f"histories[{i}]"))
            name = _name_of(history)
            if name is None and len(histories) > 1:
                name = f"run {i + 1}"
            runs.append((name, _columns(history)))
        return runs
    raise TypeError(_not_a_history_message(histories, "histories"))


def _is_history(obj):
    return hasattr(obj, "epochs") or hasattr(obj, "to_dict") or isinstance(obj, Mapping)


def _name_of(history):
    name = getattr(history, "name", None)
    if name is None and isinstance(history, Mapping) and isinstance(history.get("name"), str):
        name = history["name"]
    return None if name is None else str(name)


def _columns(history):
    if hasattr(history, "epochs"):
        rows = list(history.epochs)
        keys = list(dict.fromkeys(key for row in rows for key in row))
        raw = {key: [row.get(key) for row in rows] for key in keys}
    else:
        if hasattr(history, "to_dict"):
            history = history.to_dict()
        raw = {
            key: list(values)
            for key, values in history.items()
            if isinstance(values, (list, tuple, np.ndarray, torch.Tensor))
        }
    columns = {}
    for key, values in raw.items():
        numbers = [_number(v) for v in values]
        # Keep only columns holding numbers (not e.g. a list of strings).
        if any(v is not None for v in numbers):
            columns[str(key)] = [math.nan if v is None else v for v in numbers]
    return columns


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _metric_keys(metric, runs):
    base = {"accuracy": "acc"}.get(metric, metric)
    recorded = {key for _, columns in runs for key in columns}
    keys = [key for key in (f"train_{base}", f"val_{base}") if key in recorded]
    if not keys and metric in recorded:
        keys = [metric]
    return keys


def _missing_metric_message(metric, runs):
    recorded = list(dict.fromkeys(k for _, columns in runs for k in columns if k != "epoch"))
    return (
        f"plot_history: no history recorded the metric {metric!r}\n"
        f"  available keys: {', '.join(recorded) or '(none)'}\n"
        f"  hint:     use metrics=(\"loss\", \"accuracy\") or name one of the keys above"
    )


def _not_a_history_message(obj, where):
    return (
        f"plot_history: {where} is not a training history\n"
        f"  expected: a History (from fit), a dict key -> list of numbers, or a list / dict of those\n"
        f"  got:      {type(obj).__name__}"
    )


# ---------------------------------------------------------------------------
# Image grids


def show_images(images, labels=None, predictions=None, classes=None, ncols=8, n=None):
    """Show images in a grid, in grey, with the class name above each one.

    ``images``: uint8 ``[N, 28, 28]`` (as in ``split.images``) or float
    ``[N, 1, 28, 28]`` / ``[N, 28, 28]`` (as from a loader); any height and
    width work. Floats in [0, 1] and uint8 are shown on a fixed scale, other
    floats (e.g. normalised inputs) scaled per image.
    ``labels`` / ``predictions``: class indices, one per image. ``classes``:
    names indexed by class (default: the index itself). A wrong prediction is
    titled ``pred X (true Y)`` in red and framed in red.
    ``n``: how many to show (default all, at most 64); ``ncols``: images per row.
    """
    pixels, value_range = _as_image_stack(images)
    total = len(pixels)
    if n is None:
        n = min(total, 64)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"show_images: n must be a whole number >= 1, got {n!r}")
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"show_images: ncols must be a whole number >= 1, got {ncols!r}")
    n = min(n, total)
    labels = _image_indices(labels, "labels", total)
    predictions = _image_indices(predictions, "predictions", total)

    titles = [_image_title(i, labels, predictions, classes) for i in range(n)]
    # Long titles ("pred Ankle boot (true Sneaker)") go on two lines so that
    # neighbouring titles do not overlap.
    two_lines = any(len(text) > 16 for text, _ in titles)
    if two_lines:
        titles = [(text.replace(" (true", "\n(true"), wrong) for text, wrong in titles]

    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    has_titles = labels is not None or predictions is not None
    row_height = 1.3 + (0.25 if has_titles else 0) + (0.2 if two_lines else 0)
    fig = Figure(figsize=(1.4 * ncols, row_height * nrows), layout="constrained")
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(pixels[i], cmap="gray", vmin=value_range[0], vmax=value_range[1])
        ax.set_xticks([])
        ax.set_yticks([])
        text, wrong = titles[i]
        for spine in ax.spines.values():
            spine.set_visible(wrong)
            spine.set_color(WRONG_COLOR)
            spine.set_linewidth(2)
        if text:
            ax.set_title(text, fontsize=9, color=WRONG_COLOR if wrong else "black")
    return fig


def _as_image_stack(images):
    """Return (numpy [N, H, W], (vmin, vmax) or (None, None) to autoscale)."""
    if isinstance(images, torch.Tensor):
        array = images.detach().cpu().numpy()
    else:
        array = np.asarray(images)
    shape = list(array.shape)
    if array.ndim == 4 and shape[1] == 1:
        array = array[:, 0]
    elif array.ndim != 3:
        if array.ndim == 2 and math.isqrt(shape[1]) ** 2 == shape[1] and shape[1] > 1:
            side = math.isqrt(shape[1])
            hint = f"these look like flattened images; try images.view(-1, {side}, {side})"
        elif array.ndim == 2:
            hint = "this looks like a single image; try images.unsqueeze(0) or images[None]"
        elif array.ndim == 4:
            hint = "only grey images (one channel) are supported; for RGB show one channel, e.g. images[:, 0]"
        else:
            hint = "pass a batch of images, e.g. split.images[:16] or the x of one batch"
        raise ValueError(
            "show_images: images have the wrong shape\n"
            "  expected: [N, H, W] or [N, 1, H, W] grey images, e.g. [16, 28, 28] or [64, 1, 28, 28]\n"
            f"  got:      {shape}\n"
            f"  hint:     {hint}"
        )
    if len(array) == 0:
        raise ValueError("show_images: got 0 images; pass at least one")
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        return array, (0, 255)
    array = array.astype(np.float32)
    if np.nanmin(array) >= 0 and np.nanmax(array) <= 1:
        return array, (0.0, 1.0)
    return array, (None, None)


def _image_indices(values, name, total):
    if values is None:
        return None
    indices = _as_class_indices(values, name)
    if len(indices) < total:
        raise ValueError(
            f"show_images: {name} has {len(indices)} entries but there are {total} images\n"
            f"  hint:     pass one {name[:-1]} per image"
        )
    return indices.tolist()


def _image_title(i, labels, predictions, classes):
    """Return (title text, whether the prediction is wrong)."""
    true = None if labels is None else _class_name(labels[i], classes)
    if predictions is None:
        return (true or "", False)
    pred = _class_name(predictions[i], classes)
    if labels is None:
        return (f"pred {pred}", False)
    if predictions[i] == labels[i]:
        return (true, False)
    return (f"pred {pred} (true {true})", True)


def _class_name(index, classes):
    if classes is None:
        return str(index)
    if not 0 <= index < len(classes):
        raise ValueError(
            f"class index {index} has no name: classes has {len(classes)} names\n"
            f"  hint:     pass the class names of the data set, e.g. classes=train.classes"
        )
    return str(classes[index])


# ---------------------------------------------------------------------------
# Confusion matrix


def confusion_matrix(targets, predictions, num_classes=None):
    """Count (true class, predicted class) pairs.

    ``targets`` and ``predictions`` hold one class index per sample (tensors,
    arrays or lists; a ``[N, 1]`` column is fine). Returns an int64 tensor
    ``[C, C]`` whose entry ``[t, p]`` counts samples of true class ``t``
    predicted as ``p``: rows are true classes, columns predicted ones. ``C`` is
    ``num_classes``, or else the largest index seen plus one.
    """
    targets = _as_class_indices(targets, "targets")
    predictions = _as_class_indices(predictions, "predictions")
    if len(targets) != len(predictions):
        raise ValueError(
            "confusion_matrix: targets and predictions differ in length\n"
            f"  got:      {len(targets)} targets and {len(predictions)} predictions\n"
            "  hint:     pass one prediction per target, for the same samples in the same order"
        )
    if num_classes is None:
        if len(targets) == 0:
            raise ValueError("confusion_matrix: no samples, so the number of classes is unknown; pass num_classes")
        num_classes = int(max(targets.max(), predictions.max())) + 1
    for name, values in (("targets", targets), ("predictions", predictions)):
        if len(values) and values.max() >= num_classes:
            raise ValueError(
                f"confusion_matrix: {name} holds class {int(values.max())}, but there are {num_classes} classes\n"
                "  hint:     check num_classes (or the class names you passed)"
            )
    pairs = targets * num_classes + predictions
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def plot_confusion_matrix(targets, predictions, classes=None, normalize=False):
    """Draw the confusion matrix of ``targets`` vs ``predictions`` as a heat map.

    Rows are true classes (axis "true"), columns predicted ones (axis
    "predicted"), labelled with ``classes`` if given (whose length also fixes
    the number of classes). Each cell shows its count or, with
    ``normalize=True``, the fraction of its row (each row sums to 1; a class
    absent from ``targets`` gives a row of zeros). The title gives the accuracy.
    """
    matrix = confusion_matrix(targets, predictions, None if classes is None else len(classes))
    counts = matrix.numpy()
    num_classes = len(counts)
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(num_classes)]
    if normalize:
        values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    else:
        values = counts

    side = max(4.5, 0.5 * num_classes + 2)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else max(int(counts.max()), 1))
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class" if normalize else "count")
    if num_classes <= 30:  # beyond that the numbers would not fit in the cells
        fontsize = 9 if num_classes <= 12 else 7
        for t in range(num_classes):
            for p in range(num_classes):
                value = values[t, p]
                text = str(int(value)) if not normalize or value == 0 else f"{value:.2f}"
                ax.text(p, t, text, ha="center", va="center", fontsize=fontsize,
                        color=_text_color_on(image.cmap(image.norm(value))))
    ax.set_xticks(range(num_classes), names)
    ax.set_yticks(range(num_classes), names)
    if max(len(name) for name in names) > 2:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else 0.0
    ax.set_title(f"confusion matrix: accuracy {100 * accuracy:.1f}% of {total}"
                 + (" (rows sum to 1)" if normalize else ""))
    return fig


def _text_color_on(rgba):
    # Perceived brightness of the cell (ITU-R BT.601 weights).
    red, green, blue = rgba[:3]
    return "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"


def _as_class_indices(values, name):
    """Class indices as a 1-D int64 CPU tensor; clear errors otherwise."""
    if isinstance(values, torch.Tensor):
        tensor = values.detach().cpu()
    else:
        tensor = torch.as_tensor(np.asarray(values))
    if tensor.ndim == 2 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    if tensor.ndim != 1:
        hint = "pass one class index per sample"
        if tensor.ndim == 2:
            hint = "these look like scores per class; pass scores.argmax(dim=1)"
        raise ValueError(
            f"{name}: wrong shape\n"
            f"  expected: [N] class indices\n"
            f"  got:      {list(tensor.shape)}\n"
            f"  hint:     {hint}"
        )
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise ValueError(
                f"{name}: expected whole class indices, got a fractional value: "
                f"{tensor[tensor != tensor.round()][0].item():g}\n"
                "  hint:     for probabilities of class 1 try (probabilities > 0.5).long()"
            )
    tensor = tensor.long()
    if len(tensor) and tensor.min() < 0:
        raise ValueError(f"{name}: class indices must be >= 0, got {int(tensor.min())}")
    return tensor


# ---------------------------------------------------------------------------
# Decision boundary of a 2-D classifier


def plot_decision_boundary(model, X, y, resolution=200, title=None, ax=None):
    """Show which class ``model`` predicts at each point of the plane.

    ``X`` is ``[N, 2]`` (two input features), ``y`` one label per row. The
    background covers the data plus a margin, at ``resolution`` x
    ``resolution`` points. A model with one output column is read as the
    probability of class 1 (threshold 0.5; outputs outside [0, 1] are taken as
    logits and passed through a sigmoid) and shaded by probability with the
    0.5 line drawn; with C columns the background shows the argmax class,
    with black lines between classes. The data points are drawn on top,
    coloured by label.

    ``model`` may be an ``nn.Module`` or any function of a ``[M, 2]`` tensor.
    A module runs on its own device in eval mode under ``torch.no_grad()``,
    and every submodule's train/eval mode is restored afterwards. Pass ``ax``
    to draw into an existing axes (e.g. before/after side by side); the
    figure of that axes is returned.
    """
    points = _as_points(X)
    labels = _as_class_indices(y, "y")
    if len(labels) != len(points):
        raise ValueError(f"plot_decision_boundary: X has {len(points)} rows but y has {len(labels)} labels")
    xs = torch.linspace(*_padded_range(points[:, 0]), resolution)
    ys = torch.linspace(*_padded_range(points[:, 1]), resolution)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    outputs = _predict(model, torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))

    if ax is None:
        fig = Figure(figsize=(6, 4.8), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    grid_x, grid_y = grid_x.numpy(), grid_y.numpy()
    if outputs.shape[1] == 1:
        probability = outputs[:, 0]
        colorbar_label = "P(class 1)"
        if probability.min() < 0 or probability.max() > 1:
            probability = torch.sigmoid(probability)
            colorbar_label = "P(class 1) = sigmoid(output)"
        probability = probability.reshape(grid_x.shape).numpy()
        cmap = LinearSegmentedColormap.from_list("labkit_two_classes", [_light(COLORS[0]), "white", _light(COLORS[1])])
        filled = ax.contourf(grid_x, grid_y, probability, levels=np.linspace(0, 1, 11), cmap=cmap)
        if probability.min() < 0.5 < probability.max():
            ax.contour(grid_x, grid_y, probability, levels=[0.5], colors="black", linewidths=1.5)
        fig.colorbar(filled, ax=ax, label=colorbar_label)
    else:
        # Class k is predicted where its score beats the best other score.
        # Filling each class's "margin > 0" region gives smooth boundaries;
        # contouring the class index itself would draw a false sliver of
        # class 1 wherever classes 0 and 2 meet.
        for k, color in enumerate(_colors(outputs.shape[1])):
            others = torch.cat([outputs[:, :k], outputs[:, k + 1 :]], dim=1).max(dim=1).values
            margin = (outputs[:, k] - others).reshape(grid_x.shape).numpy()
            if margin.max() > 0:
                ax.contourf(grid_x, grid_y, margin, levels=[0, margin.max()], colors=[_light(color)])
            if margin.min() < 0 < margin.max():
                ax.contour(grid_x, grid_y, margin, levels=[0], colors="black", linewidths=1)

    class_colors = _colors(max(int(labels.max()) + 1, outputs.shape[1], 2))
    size = 80 if len(points) <= 20 else 30 if len(points) <= 500 else 10
    for label in labels.unique().tolist():
        chosen = labels == label
        ax.scatter(points[chosen, 0], points[chosen, 1], color=class_colors[label], s=size,
                   edgecolors="black", linewidths=0.8, label=f"class {label}", zorder=3)
    ax.legend(loc="best", framealpha=0.9)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title("decision boundary" if title is None else title)
    return fig


def _as_points(X):
    points = X.detach().cpu() if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(
            "plot_decision_boundary: X has the wrong shape\n"
            "  expected: [N, 2] (N points with two input features)\n"
            f"  got:      {list(points.shape)}\n"
            "  hint:     the decision boundary can only be drawn for two input features"
        )
    return points.float()


def _padded_range(values):
    low, high = float(values.min()), float(values.max())
    margin = 0.2 * (high - low) if high > low else 1.0
    return low - margin, high + margin


def _predict(model, inputs):
    """Run ``model`` on ``inputs`` ([M, 2]); return a float CPU tensor [M, K]."""
    modes = []
    device, dtype = torch.device("cpu"), torch.float32
    if isinstance(model, torch.nn.Module):
        # modules() is pre-order, so restoring in this order gives every
        # submodule its own mode back even if they differed.
        modes = [(module, module.training) for module in model.modules()]
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                device, dtype = tensor.device, tensor.dtype
                break
        model.eval()
    try:
        with torch.no_grad():
            # Chunks keep memory small for wide models at high resolution.
            outputs = [model(chunk.to(device=device, dtype=dtype)) for chunk in inputs.split(8192)]
    finally:
        for module, training in modes:
            module.train(training)
    if not all(isinstance(out, torch.Tensor) for out in outputs):
        raise TypeError(f"plot_decision_boundary: the model must return a tensor, got {type(outputs[0]).__name__}")
    output = torch.cat(outputs).float().cpu()
    if output.ndim == 1:
        output = output[:, None]
    if output.ndim != 2 or len(output) != len(inputs):
        raise ValueError(
            "plot_decision_boundary: the model's output has the wrong shape\n"
            f"  expected: [M, 1] (probability of class 1) or [M, C] (a score per class), M = {len(inputs)}\n"
            f"  got:      {list(torch.cat(outputs).shape)}"
        )
    return output


def _light(color, amount=0.55):
    """Blend ``color`` with white, so data points stand out on the background."""
    return tuple(c + (1 - c) * amount for c in to_rgb(color))


# ---------------------------------------------------------------------------
# A function and its derivative


def plot_function(fn, x_range=(-5, 5), derivative=True, name=None):
    """Plot ``fn`` on ``x_range`` and, next to it, its derivative from autograd.

    ``fn`` maps a 1-D float tensor to a tensor of the same shape (e.g. an
    activation function or ``nn.Sigmoid()``); pass a dict name -> fn to
    compare several (one colour each, same colour in both axes). The
    derivative is computed as ``x.requires_grad_()``, ``fn(x).sum().backward()``,
    ``x.grad``, at 401 points (including 0 when in range). ``name`` labels a single ``fn``
    (default: its ``__name__``).
    """
    if isinstance(fn, Mapping):
        if name is not None:
            raise ValueError("plot_function: name is for a single function; a dict already names its functions")
        functions = {str(key): f for key, f in fn.items()}
        if not functions:
            raise ValueError("plot_function: got an empty dict; pass at least one function")
    else:
        functions = {name or _function_name(fn): fn}
    try:
        low, high = (float(v) for v in x_range)
    except (TypeError, ValueError):
        raise ValueError(f"plot_function: x_range must be two numbers (low, high), got {x_range!r}") from None
    if not low < high:
        raise ValueError(f"plot_function: x_range must have low < high, got {x_range!r}")

    xs = torch.linspace(low, high, 401)
    if low < 0 < high:
        xs[xs.abs().argmin()] = 0.0  # so kinks at 0 (ReLU) are drawn where they are
    fig = Figure(figsize=(10 if derivative else 5.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 2 if derivative else 1, squeeze=False)[0]
    for i, ((label, f), color) in enumerate(zip(functions.items(), _colors(len(functions)), strict=True)):
        # Varying the line style keeps curves that coincide (ReLU and ELU for
        # x > 0) visible, also without colour.
        style = {"color": color, "label": label, "linestyle": ("-", "--", "-.", ":")[i % 4]}
        x = xs.clone().requires_grad_()
        y = _call(f, x, label)
        axes[0].plot(xs.numpy(), y.detach().cpu().numpy(), **style)
        if derivative:
            axes[1].plot(xs.numpy(), _derivative(x, y, label).cpu().numpy(), **style)

    single = next(iter(functions)) if len(functions) == 1 else None
    titles = [f"{single}(x)", f"{single}'(x)"] if single else ["functions", "derivatives"]
    for ax, text in zip(axes, titles, strict=False):  # one axes without the derivative
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.grid(alpha=0.3)
        ax.set_title(text)
        ax.set_xlabel("x")
        ax.set_ylabel(text if single else text[:-1])
        if not single:
            ax.legend()
    return fig


def _function_name(fn):
    name = getattr(fn, "__name__", None)
    if name and name != "<lambda>":
        return name
    if isinstance(fn, torch.nn.Module):
        return type(fn).__name__
    return "f"


def _call(fn, x, label):
    try:
        y = fn(x)
    except RuntimeError as error:
        if "in-place" not in str(error):
            raise
        raise RuntimeError(
            f"plot_function: {label} changes its input in place (e.g. x[x < 0] = 0), which autograd forbids here\n"
            "  hint:     compute a new tensor instead, e.g. torch.where(x > 0, x, 0) or x.clamp(min=0)"
        ) from error
    if not isinstance(y, torch.Tensor):
        raise TypeError(
            f"plot_function: {label} must return a torch tensor\n"
            f"  got:      {type(y).__name__}\n"
            "  hint:     use torch operations (torch.exp, torch.where, ...) rather than math or numpy"
        )
    if y.shape != x.shape:
        raise ValueError(
            f"plot_function: {label} must return one value per input\n"
            f"  expected: shape {list(x.shape)}\n"
            f"  got:      shape {list(y.shape)}\n"
            "  hint:     apply the function element-wise; do not sum or reshape"
        )
    return y


def _derivative(x, y, label):
    if not y.requires_grad:
        raise ValueError(
            f"plot_function: cannot differentiate {label}: its output does not depend on x through autograd\n"
            "  hint:     avoid .item(), .numpy(), torch.tensor(...) and .detach() inside the function;\n"
            "            for a constant function, or to see the values only, pass derivative=False"
        )
    y.sum().backward()
    return x.grad.detach().clone() if x.grad is not None else torch.zeros_like(x.detach())


# ---------------------------------------------------------------------------


def _colors(n):
    """``n`` distinguishable colours: Okabe-Ito, or viridis beyond eight."""
    if n <= len(COLORS):
        return list(COLORS[:n])
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]

"""labkit: data, training loops, plots and checks for the deep-learning labs.

    import labkit as lk
    train, test = lk.load_mnist()
    history = lk.fit(model, train.loader(64, shuffle=True), epochs=5, loss_fn=loss_fn, optimizer=optimizer)
    lk.plot_history(history)

Everything listed in ``__all__`` is the stable public API: it is what the labs
use, and it will not be renamed or removed without a deprecation period.

``import labkit`` is light: each name is imported from its module the first time
it is used (``lk.fit`` loads torch, ``lk.plot_history`` matplotlib, the learning-rate
demos ipywidgets), so the grader, a script or ``python -m labkit.data`` pay only for
what they use.
"""
import importlib
import sys

__version__ = "0.1.0"

# Where each public name lives.
_MODULES = {
    "ablate": ["Ablation", "Results", "default_cache_dir", "load_runs", "reference_path", "save_runs"],
    "checks": ["CheckError", "check_accuracy", "check_close", "check_dtype", "check_equal", "check_finite",
               "check_in_range", "check_no_calls", "check_raises", "check_shape", "trace_layers"],
    "data": ["DataUnavailableError", "Dataset", "Split", "TensorLoader", "load_fashion_mnist", "load_mnist",
             "xor_data"],
    "mode": ["by_mode", "quick_mode"],
    "plot": ["confusion_matrix", "plot_confusion_matrix", "plot_decision_boundary", "plot_function", "plot_history",
             "show_images"],
    "submission": ["check_lab", "watch_tests"],
    "train": ["EarlyStopping", "Evaluation", "FirstBatchError", "History", "TrainingDiverged", "evaluate", "fit",
              "load_model", "pick_device", "read_metadata", "save_model", "set_seed"],
    "widgets": ["gradient_descent_demo", "learning_rate_explorer"],
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted([*_HOME, "__version__"])


def __getattr__(name: str):
    """Import a public name (or a submodule, ``lk.data``) the first time it is used."""
    if name in _HOME:
        value = getattr(importlib.import_module(f"labkit.{_HOME[name]}"), name)
    elif name in _MODULES:
        value = importlib.import_module(f"labkit.{name}")
    else:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}: the public names are in labkit.__all__")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__, *_MODULES})


def _figure_png(figure):
    """The figure as base64 PNG text, as Jupyter's inline backend gives it: raw bytes would reach
    the browser as an object inside a widget's state (an Output widget's ``outputs``)."""
    from IPython.core.pylabtools import print_figure

    return print_figure(figure, "png", bbox_inches="tight", base64=True)


def _show_figures_in_notebooks() -> None:
    """In a notebook, a matplotlib Figure that ends a cell (labkit's or the lab's own) shows as a PNG.

    Jupyter's inline backend would register that only once pyplot is loaded, which labkit never
    needs; this registers it by name, without importing matplotlib, unless a formatter is already
    there.  Outside IPython it does nothing."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    figure = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
    if figure is not None and figure in png.type_printers:
        return
    png.for_type_by_name("matplotlib.figure", "Figure", _figure_png)


_show_figures_in_notebooks()

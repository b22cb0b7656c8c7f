"""labkit: data, training loops, plots and checks for the deep-learning labs.

    import labkit as lk
    train, test = lk.load_mnist()
    history = lk.fit(model, train.loader(64, shuffle=True), epochs=5, loss_fn=loss_fn, optimizer=optimizer)
    lk.plot_history(history)

Everything listed in ``__all__`` is the stable public API: it is what the labs
use, and it will not be renamed or removed without a deprecation period.
"""
from labkit.ablate import Ablation
from labkit.checks import (
    CheckError,
    check_accuracy,
    check_close,
    check_dtype,
    check_equal,
    check_finite,
    check_shape,
)
from labkit.data import (
    Dataset,
    DataUnavailableError,
    Split,
    TensorLoader,
    load_fashion_mnist,
    load_mnist,
    xor_data,
)
from labkit.mode import by_mode, quick_mode
from labkit.plot import (
    confusion_matrix,
    plot_confusion_matrix,
    plot_decision_boundary,
    plot_function,
    plot_history,
    show_images,
)
from labkit.submission import check_lab, watch_tests
from labkit.train import (
    EarlyStopping,
    Evaluation,
    History,
    TrainingDiverged,
    evaluate,
    fit,
    load_model,
    pick_device,
    read_metadata,
    save_model,
    set_seed,
)
from labkit.widgets import gradient_descent_demo, learning_rate_explorer

__version__ = "0.1.0"

__all__ = [
    "Ablation", "CheckError", "DataUnavailableError", "Dataset", "EarlyStopping", "Evaluation", "History", "Split",
    "TensorLoader", "TrainingDiverged", "__version__", "by_mode", "check_accuracy", "check_close", "check_dtype",
    "check_lab",
    "check_equal", "check_finite", "check_shape", "confusion_matrix", "evaluate", "fit", "gradient_descent_demo",
    "learning_rate_explorer", "load_fashion_mnist", "load_mnist", "load_model", "pick_device", "plot_confusion_matrix",
    "plot_decision_boundary", "plot_function", "plot_history", "quick_mode", "read_metadata", "save_model",
    "set_seed", "show_images", "watch_tests", "xor_data",
]

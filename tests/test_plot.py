"""Tests for labkit.plot: what is drawn (lines, data, titles, colours, grid
layout, contour regions), the confusion-matrix counts, and the error messages.

Headless: the figures never touch a pyplot backend, and Agg is selected below
in case anything does. Every random input is seeded.
"""

import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import same_color
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from torch import nn

from labkit.plot import (
    COLORS,
    WRONG_COLOR,
    confusion_matrix,
    plot_confusion_matrix,
    plot_decision_boundary,
    plot_function,
    plot_history,
    show_images,
)

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    # Every labkit figure is a bare Figure: pyplot must never own one, or a
    # notebook would show it twice.
    assert plt.get_fignums() == []
    yield
    assert plt.get_fignums() == []


class FakeHistory:
    """What labkit.train.History offers (epochs, name, to_dict), without importing it."""

    def __init__(self, rows, name=None):
        self.epochs = rows
        self.name = name

    def to_dict(self):
        return {key: [row[key] for row in self.epochs] for key in self.epochs[0]}


def make_history(train_loss, val_loss, train_acc, val_acc, name=None):
    rows = [
        {"epoch": e + 1, "train_loss": tl, "val_loss": vl, "train_acc": ta, "val_acc": va, "lr": 0.01, "time": 0.5}
        for e, (tl, vl, ta, va) in enumerate(zip(train_loss, val_loss, train_acc, val_acc, strict=True))
    ]
    return FakeHistory(rows, name)


SGD = make_history([2.0, 1.0, 0.5], [2.1, 1.2, 0.8], [0.3, 0.6, 0.8], [0.25, 0.55, 0.7])
ADAM = make_history([1.5, 0.6, 0.3], [1.6, 0.9, 0.7], [0.5, 0.8, 0.9], [0.45, 0.7, 0.85])


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def curves(ax):
    """The labelled lines of ``ax`` (not the grey reference lines at 0)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def png_bytes(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# plot_history


def test_two_named_runs_give_four_lines_per_metric_with_the_recorded_values():
    fig = plot_history({"sgd": SGD, "adam": ADAM})

    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax, metric in zip(fig.axes, ["loss", "acc"], strict=True):
        lines = lines_by_label(ax)
        assert sorted(lines) == ["adam (train)", "adam (val)", "sgd (train)", "sgd (val)"]
        for name, history in (("sgd", SGD), ("adam", ADAM)):
            for split, style in (("train", "-"), ("val", "--")):
                line = lines[f"{name} ({split})"]
                assert list(line.get_xdata()) == [1, 2, 3]
                assert list(line.get_ydata()) == [row[f"{split}_{metric}"] for row in history.epochs]
                assert line.get_linestyle() == style
            # Same colour for a run's train and val curves, another for the other run.
            assert same_color(lines[f"{name} (train)"].get_color(), lines[f"{name} (val)"].get_color())
        assert not same_color(lines["sgd (train)"].get_color(), lines["adam (train)"].get_color())
        assert ax.get_xlabel() == "epoch"
    assert fig.legends, "several runs share one figure legend"


@pytest.mark.parametrize(
    "as_input",
    [
        lambda h: h,  # a History
        lambda h: h.to_dict(),  # a plain mapping key -> list
        lambda h: type("OnlyToDict", (), {"to_dict": lambda self: h.to_dict()})(),
        lambda h: [h],  # a list holding one run
    ],
    ids=["history", "mapping", "to_dict", "list"],
)
def test_accepts_every_history_form_and_labels_a_single_run_train_and_val(as_input):
    fig = plot_history(as_input(SGD))

    lines = lines_by_label(fig.axes[0])
    assert sorted(lines) == ["train", "val"]
    assert list(lines["train"].get_ydata()) == [2.0, 1.0, 0.5]
    assert list(lines["val"].get_xdata()) == [1, 2, 3]


def test_list_of_runs_uses_their_names_or_numbers_them():
    named = plot_history([SGD, make_history([1], [1], [0.5], [0.5], name="mine")], metrics="loss")
    assert sorted(lines_by_label(named.axes[0])) == ["mine (train)", "mine (val)", "run 1 (train)", "run 1 (val)"]


def test_accuracy_axis_is_labelled_in_percent_of_the_recorded_fractions():
    fig = plot_history(SGD)
    ax = fig.axes[1]
    png_bytes(fig)  # draw, so the tick labels exist

    assert isinstance(ax.yaxis.get_major_formatter(), PercentFormatter)
    assert list(lines_by_label(ax)["train"].get_ydata()) == [0.3, 0.6, 0.8]  # data unchanged
    ticks = [(loc, label.get_text()) for loc, label in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)]
    for loc, text in ticks:
        assert text.endswith("%")
        assert float(text.rstrip("%").replace("\u2212", "-")) == pytest.approx(100 * loc)


def test_accuracy_already_in_percent_is_not_scaled_again():
    fig = plot_history({"train_acc": [50.0, 75.0, 90.0]}, metrics=("accuracy",))
    ax = fig.axes[0]
    png_bytes(fig)
    for loc, label in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True):
        assert float(label.get_text().rstrip("%").replace("\u2212", "-")) == pytest.approx(loc)


def test_other_metric_names_are_looked_up_literally():
    fig = plot_history(SGD, metrics=("lr", "val_acc"))

    assert [ax.get_title() for ax in fig.axes] == ["lr", "val_acc"]
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [0.01] * 3
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [0.25, 0.55, 0.7]


def test_default_metrics_skip_accuracy_when_not_recorded():
    fig = plot_history({"train_loss": [1.0, 0.5]})
    assert [ax.get_title() for ax in fig.axes] == ["loss"]


def test_title_becomes_the_figure_title():
    assert plot_history(SGD, title="Lab 3").get_suptitle() == "Lab 3"


def test_history_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="no histories"):
        plot_history([])
    with pytest.raises(ValueError, match="no histories"):
        plot_history({})
    with pytest.raises(ValueError, match=r"'f1'(.|\n)*available keys: train_loss, val_loss, train_acc, val_acc, lr"):
        plot_history(SGD, metrics=("loss", "f1"))
    with pytest.raises(TypeError, match=r"histories\[1\] is not a training history"):
        plot_history([SGD, 3.0])


# ---------------------------------------------------------------------------
# show_images


def digits(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 28, 28), generator=generator, dtype=torch.uint8)


def test_titles_show_class_names_and_wrong_predictions_in_red():
    classes = ("a", "b", "c", "d")
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    predictions = torch.tensor([0, 1, 3, 3, 2, 1])  # images 2 and 4 are wrong
    fig = show_images(digits(6), labels, predictions, classes=classes)

    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["a", "b", "pred d (true c)", "d", "pred c (true a)", "b"]
    for ax, wrong in zip(fig.axes, [False, False, True, False, True, False], strict=True):
        assert same_color(ax.title.get_color(), WRONG_COLOR if wrong else "black")
        assert ax.spines["left"].get_visible() == wrong
        assert same_color(ax.spines["left"].get_edgecolor(), WRONG_COLOR)


def test_long_wrong_titles_break_before_true_so_neighbours_do_not_overlap():
    classes = ("Sneaker", "Ankle boot")
    fig = show_images(digits(2), [0, 1], [1, 1], classes=classes)
    assert fig.axes[0].get_title() == "pred Ankle boot\n(true Sneaker)"


def test_without_classes_titles_are_indices_and_predictions_alone_say_pred():
    assert [ax.get_title() for ax in show_images(digits(2), labels=[7, 1]).axes] == ["7", "1"]
    assert [ax.get_title() for ax in show_images(digits(2), predictions=[7, 1]).axes] == ["pred 7", "pred 1"]
    assert [ax.get_title() for ax in show_images(digits(2)).axes] == ["", ""]


@pytest.mark.parametrize(
    ("count", "n", "ncols", "expected_axes", "expected_grid"),
    [(10, None, 4, 10, (3, 4)), (10, 5, 8, 5, (1, 5)), (100, None, 8, 64, (8, 8)), (3, 10, 2, 3, (2, 2))],
)
def test_n_and_ncols_give_the_grid(count, n, ncols, expected_axes, expected_grid):
    fig = show_images(digits(count), ncols=ncols, n=n)

    assert len(fig.axes) == expected_axes
    for i, ax in enumerate(fig.axes):
        assert ax.get_subplotspec().get_geometry() == (*expected_grid, i, i)


def test_uint8_and_float_layouts_show_the_same_grey_pixels():
    images = digits(3)
    as_float = images.float() / 255

    for shown, vmax in ((images, 255), (as_float, 1.0), (as_float[:, None], 1.0)):
        fig = show_images(shown)
        for ax, expected in zip(fig.axes, shown.reshape(3, 28, 28), strict=True):
            image = ax.get_images()[0]
            np.testing.assert_array_equal(np.asarray(image.get_array()), expected.numpy())
            assert image.get_clim() == (0, vmax)
            assert image.get_cmap().name == "gray"


def test_image_shape_errors_say_expected_got_and_what_to_try():
    with pytest.raises(ValueError, match=r"(?s)expected: \[N, H, W\].*got:      \[16, 784\].*view\(-1, 28, 28\)"):
        show_images(torch.rand(16, 784))
    with pytest.raises(ValueError, match=r"(?s)got:      \[28, 28\].*unsqueeze\(0\)"):
        show_images(torch.rand(28, 28))
    with pytest.raises(ValueError, match=r"(?s)got:      \[4, 3, 28, 28\].*one channel"):
        show_images(torch.rand(4, 3, 28, 28))
    with pytest.raises(ValueError, match="labels has 2 entries but there are 3 images"):
        show_images(digits(3), labels=[1, 2])
    with pytest.raises(ValueError, match="classes has 2 names"):
        show_images(digits(1), labels=[5], classes=("a", "b"))


# ---------------------------------------------------------------------------
# confusion_matrix and plot_confusion_matrix


def test_confusion_matrix_counts_a_hand_made_example():
    targets = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])

    matrix = confusion_matrix(targets, predictions)

    assert matrix.dtype == torch.int64
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert confusion_matrix(targets, predictions, num_classes=5).shape == (5, 5)


def test_confusion_matrix_matches_a_brute_force_count():
    generator = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 7, (500,), generator=generator)
    predictions = torch.randint(0, 7, (500,), generator=generator)

    expected = torch.zeros(7, 7, dtype=torch.int64)
    for t, p in zip(targets.tolist(), predictions.tolist(), strict=True):
        expected[t, p] += 1

    assert torch.equal(confusion_matrix(targets, predictions, num_classes=7), expected)
    assert torch.equal(confusion_matrix(targets.tolist(), predictions.numpy(), num_classes=7), expected)


def test_confusion_matrix_accepts_a_float_label_column():
    targets = torch.tensor([[0.0], [1.0], [1.0], [0.0]])  # like xor_data()'s y
    assert confusion_matrix(targets, torch.tensor([0, 1, 0, 0])).tolist() == [[2, 0], [1, 1]]


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="4 targets and 3 predictions"):
        confusion_matrix([0, 1, 1, 0], [0, 1, 1])
    with pytest.raises(ValueError, match=r"argmax\(dim=1\)"):
        confusion_matrix([0, 1], torch.randn(2, 10))
    with pytest.raises(ValueError, match="holds class 3, but there are 3 classes"):
        confusion_matrix([0, 1, 3], [0, 1, 2], num_classes=3)
    with pytest.raises(ValueError, match=">= 0"):
        confusion_matrix([0, -1], [0, 1])
    with pytest.raises(ValueError, match=r"\(probabilities > 0.5\)"):
        confusion_matrix([0, 1], [0.2, 0.9])


def test_plot_confusion_matrix_annotates_counts_with_contrasting_text():
    targets = [0, 0, 0, 0, 1, 1, 2]
    predictions = [0, 0, 0, 0, 1, 2, 2]
    fig = plot_confusion_matrix(targets, predictions, classes=("cat", "dog", "owl"))
    ax = fig.axes[0]

    np.testing.assert_array_equal(ax.get_images()[0].get_array(), [[4, 0, 0], [0, 1, 1], [0, 0, 1]])
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert texts[(0, 0)].get_text() == "4" and texts[(1, 2)].get_text() == "1"
    assert texts[(0, 0)].get_color() == "white"  # darkest cell
    assert texts[(0, 1)].get_color() == "black"  # empty, white cell
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "owl"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "owl"]
    assert "85.7%" in ax.get_title()


def test_normalized_rows_sum_to_one_and_an_absent_class_gives_zeros():
    generator = torch.Generator().manual_seed(2)
    targets = torch.randint(0, 3, (200,), generator=generator)  # class 3 never occurs
    predictions = torch.randint(0, 4, (200,), generator=generator)
    fig = plot_confusion_matrix(targets, predictions, classes=list("abcd"), normalize=True)

    values = np.asarray(fig.axes[0].get_images()[0].get_array())
    np.testing.assert_allclose(values[:3].sum(axis=1), 1.0)
    np.testing.assert_array_equal(values[3], 0.0)
    counts = confusion_matrix(targets, predictions, num_classes=4).numpy()
    assert fig.axes[0].texts[1].get_text() == f"{counts[0, 1] / counts[0].sum():.2f}"


# ---------------------------------------------------------------------------
# plot_decision_boundary


def x1_greater_than_x2(outputs=1):
    """A hand-set linear model: class 1 (or column 0 wins) exactly where x1 > x2."""
    linear = nn.Linear(2, outputs)
    with torch.no_grad():
        if outputs == 1:
            linear.weight.copy_(torch.tensor([[4.0, -4.0]]))
        else:
            linear.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        linear.bias.zero_()
    return nn.Sequential(linear, nn.Sigmoid()) if outputs == 1 else nn.Sequential(linear)


def sample_points(count=300, seed=3):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 2, generator=generator) * 2 - 1


def region_of(contour_set, points):
    """Index of the filled band of ``contour_set`` holding each point (-1 if none)."""
    found = np.full(len(points), -1)
    for band, path in enumerate(contour_set.get_paths()):
        if len(path.vertices):
            found[path.contains_points(points)] = band
    return found


def test_probability_background_is_split_where_the_model_says():
    X = sample_points(40)
    y = (X[:, 0] > X[:, 1]).long()
    fig = plot_decision_boundary(x1_greater_than_x2(), X, y, resolution=80)
    ax = fig.axes[0]
    filled = [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]
    assert len(filled) == 1

    # Points well away from the line x1 = x2 (the grid is not infinitely fine).
    probe = sample_points(400, seed=4).numpy()
    probe = probe[np.abs(probe[:, 0] - probe[:, 1]) > 0.15]
    band = region_of(filled[0], probe)
    assert (band >= 0).all()
    above_half = filled[0].levels[band] >= 0.5
    np.testing.assert_array_equal(above_half, probe[:, 0] > probe[:, 1])
    assert ax.get_xlim()[0] < X[:, 0].min() and ax.get_xlim()[1] > X[:, 0].max()


def test_class_regions_follow_the_argmax_and_points_are_coloured_by_label():
    X = sample_points(40)
    y = (X[:, 0] <= X[:, 1]).long()  # column 0 wins where x1 > x2
    fig = plot_decision_boundary(x1_greater_than_x2(outputs=2), X, y, resolution=80)
    ax = fig.axes[0]
    regions = [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]
    assert len(regions) == 2

    probe = sample_points(400, seed=5).numpy()
    probe = probe[np.abs(probe[:, 0] - probe[:, 1]) > 0.15]
    in_class_0 = region_of(regions[0], probe) >= 0
    in_class_1 = region_of(regions[1], probe) >= 0
    np.testing.assert_array_equal(in_class_0, probe[:, 0] > probe[:, 1])
    np.testing.assert_array_equal(in_class_1, ~in_class_0)

    scatters = [c for c in ax.collections if not isinstance(c, ContourSet)]
    for label, scatter in enumerate(scatters):
        np.testing.assert_array_equal(scatter.get_offsets(), X[y == label].numpy())
        assert same_color(scatter.get_facecolor()[0], COLORS[label])


class ModeRecorder(nn.Module):
    """Records, at each forward, whether it ran in training mode and with gradients."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.Linear(3, 1))
        self.seen = []

    def forward(self, x):
        self.seen.append((self.training, self.inner[1].training, torch.is_grad_enabled()))
        return torch.sigmoid(self.inner(x))


def test_model_runs_in_eval_mode_without_grad_and_its_modes_are_restored():
    torch.manual_seed(0)
    model = ModeRecorder()
    model.train()
    model.inner[0].eval()  # mixed modes must come back exactly
    before = [m.training for m in model.modules()]

    plot_decision_boundary(model, sample_points(10), torch.arange(10) % 2, resolution=20)

    assert model.seen and all(seen == (False, False, False) for seen in model.seen)
    assert [m.training for m in model.modules()] == before
    assert all(p.grad is None for p in model.parameters())

    model.eval()
    plot_decision_boundary(model, sample_points(10), torch.arange(10) % 2, resolution=20)
    assert not any(m.training for m in model.modules())


def test_logits_are_read_through_a_sigmoid_and_ax_draws_into_a_given_figure():
    fig = Figure()
    left, right = fig.subplots(1, 2)
    logits = x1_greater_than_x2()[0]  # the same line, without the sigmoid

    returned = plot_decision_boundary(logits, sample_points(20), torch.arange(20) % 2, resolution=40, ax=right,
                                      title="logits")

    assert returned is fig
    assert right.get_title() == "logits" and not left.collections
    filled = [c for c in right.collections if isinstance(c, ContourSet) and c.filled][0]
    assert band_level_at(filled, (0.8, -0.8)) >= 0.5
    assert band_level_at(filled, (-0.8, 0.8)) < 0.5


def band_level_at(contour_set, point):
    return contour_set.levels[region_of(contour_set, np.array([point]))[0]]


def test_plain_functions_work_as_models():
    fig = plot_decision_boundary(lambda x: (x[:, :1] > 0).float(), sample_points(8), torch.arange(8) % 2,
                                 resolution=20)
    assert fig.axes[0].get_title() == "decision boundary"


def test_decision_boundary_errors():
    with pytest.raises(ValueError, match=r"(?s)expected: \[N, 2\].*got:      \[5, 3\]"):
        plot_decision_boundary(nn.Linear(3, 1), torch.rand(5, 3), torch.zeros(5))
    with pytest.raises(ValueError, match="X has 5 rows but y has 4 labels"):
        plot_decision_boundary(nn.Linear(2, 1), torch.rand(5, 2), torch.zeros(4))


# ---------------------------------------------------------------------------
# plot_function


def test_sigmoid_derivative_line_is_sigmoid_times_one_minus_sigmoid():
    fig = plot_function(torch.sigmoid, x_range=(-6, 6))
    values, derivative = fig.axes

    assert [ax.get_title() for ax in fig.axes] == ["sigmoid(x)", "sigmoid'(x)"]
    x = torch.from_numpy(curves(derivative)[0].get_xdata())
    s = torch.sigmoid(x)
    assert x[0] == -6 and x[-1] == 6 and (x == 0).any()
    np.testing.assert_allclose(curves(values)[0].get_ydata(), s, atol=1e-6)
    np.testing.assert_allclose(curves(derivative)[0].get_ydata(), s * (1 - s), atol=1e-6)


def test_a_dict_of_functions_shares_colours_across_both_axes():
    fig = plot_function({"relu": torch.relu, "tanh": torch.tanh, "leaky": nn.LeakyReLU(0.1)})

    for ax in fig.axes:
        assert [line.get_label() for line in curves(ax)] == ["relu", "tanh", "leaky"]
    for left, right in zip(curves(fig.axes[0]), curves(fig.axes[1]), strict=True):
        assert same_color(left.get_color(), right.get_color())
    leaky_derivative = curves(fig.axes[1])[2]
    x = leaky_derivative.get_xdata()
    np.testing.assert_allclose(leaky_derivative.get_ydata(), np.where(x > 0, 1.0, 0.1))


def test_names_and_derivative_false():
    assert [ax.get_title() for ax in plot_function(lambda x: x**2).axes] == ["f(x)", "f'(x)"]
    assert [ax.get_title() for ax in plot_function(nn.ReLU()).axes] == ["ReLU(x)", "ReLU'(x)"]
    only_values = plot_function(torch.tanh, derivative=False, name="my tanh")
    assert [ax.get_title() for ax in only_values.axes] == ["my tanh(x)"]


def test_function_errors_explain_the_fix():
    with pytest.raises(TypeError, match="must return a torch tensor"):
        plot_function(lambda x: x.detach().numpy())
    with pytest.raises(ValueError, match=r"(?s)expected: shape \[401\].*got:      shape \[\]"):
        plot_function(lambda x: x.sum())
    with pytest.raises(ValueError, match="derivative=False"):
        plot_function(lambda x: torch.tensor(x.tolist()))

    def relu_in_place(x):
        x[x < 0] = 0
        return x

    with pytest.raises(RuntimeError, match=r"in place(.|\n)*clamp\(min=0\)"):
        plot_function(relu_in_place)
    with pytest.raises(ValueError, match="low < high"):
        plot_function(torch.tanh, x_range=(1, -1))
    with pytest.raises(ValueError, match="name is for a single function"):
        plot_function({"tanh": torch.tanh}, name="x")


# ---------------------------------------------------------------------------
# Every plot: a bare Figure that renders to PNG


@pytest.mark.parametrize(
    "make_figure",
    [
        lambda: plot_history({"a": SGD, "b": ADAM}, title="runs"),
        lambda: show_images(digits(12), torch.arange(12) % 10, torch.arange(12) % 7),
        lambda: plot_confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], normalize=True),
        lambda: plot_decision_boundary(x1_greater_than_x2(), sample_points(20), torch.arange(20) % 2),
        lambda: plot_function({"tanh": torch.tanh, "sigmoid": torch.sigmoid}),
    ],
    ids=["history", "images", "confusion", "boundary", "function"],
)
def test_every_plot_returns_a_figure_that_saves_to_png(make_figure):
    fig = make_figure()
    assert type(fig) is Figure
    assert png_bytes(fig).startswith(b"\x89PNG\r\n\x1a\n")


def test_a_one_epoch_history_gets_an_integer_epoch_axis():
    fig = plot_history({"train_loss": [0.5], "train_acc": [0.8]})
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.5, 1.5)
    assert [t for t in ax.get_xticks() if 0.5 <= t <= 1.5] == [1.0]

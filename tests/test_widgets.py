"""labkit.widgets: the numbers behind the demos, and the widgets driven as a notebook would."""
import io
import warnings

import numpy as np
import pytest

from labkit.widgets import SURFACES, gradient_descent, gradient_descent_demo, learning_rate_explorer


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def test_gradient_descent_converges_below_and_diverges_above_2_over_lambda_max():
    bowl = SURFACES["quadratic"]()
    assert bowl.lambda_max == 10.0
    path, losses, diverged = gradient_descent(bowl, lr=0.19, steps=300)
    assert diverged is None and losses[-1] < 1e-6 and len(path) == 301
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warnings on the way out
        path, losses, diverged = gradient_descent(bowl, lr=0.21, steps=1000)
    assert diverged is not None and np.isfinite(losses).all() and np.isfinite(path).all()
    assert losses[-1] > losses[0]


def test_a_run_that_ends_above_its_start_is_diverged_even_before_it_overflows():
    bowl = SURFACES["quadratic"]()
    path, losses, diverged = gradient_descent(bowl, lr=0.25, steps=30)  # the demo's default steps
    assert len(path) == 31 and losses[-1] > 1e9 and diverged == 1
    assert gradient_descent(bowl, lr=0.2, steps=30)[2] is None  # at the threshold: oscillates, no growth


def test_momentum_moves_the_threshold_to_2_times_1_plus_beta_over_lambda_max():
    bowl = SURFACES["quadratic"]()
    assert gradient_descent(bowl, lr=0.28, steps=2000, momentum=0.5)[2] is None      # < 0.3
    assert gradient_descent(bowl, lr=0.32, steps=2000, momentum=0.5)[2] is not None  # > 0.3


def test_rosenbrock_is_the_classic_valley():
    valley = SURFACES["rosenbrock"]()
    assert valley.f(1.0, 1.0) == 0.0 and np.allclose(valley.grad(1.0, 1.0), 0)
    assert valley.lambda_max == pytest.approx(1001.6, abs=0.1)
    numeric = np.array([(valley.f(-1.5 + h, 2.0) - valley.f(-1.5 - h, 2.0)) / (2 * h),
                        (valley.f(-1.5, 2.0 + h) - valley.f(-1.5, 2.0 - h)) / (2 * h)]) if (h := 1e-6) else None
    np.testing.assert_allclose(valley.grad(-1.5, 2.0), numeric, rtol=1e-5)


def test_moving_the_slider_past_the_threshold_redraws_and_says_diverged():
    demo = gradient_descent_demo(lr=0.05)
    before, image_before = demo.figure, png(demo.figure)
    contour = demo.figure.axes[0]
    assert "diverged" not in demo.status.value and contour.get_xlim() == (-4.5, 4.5)
    assert demo.lr.continuous_update is False and demo.steps.continuous_update is False
    demo.lr.value = 0.25  # beyond 2 / lambda_max = 0.2
    assert demo.figure is not before and png(demo.figure) != image_before
    assert "diverged" in demo.status.value
    assert demo.figure.axes[0].get_xlim() == (-4.5, 4.5)  # the axes do not blow up
    legend = [text.get_text() for text in demo.figure.axes[0].get_legend().get_texts()]
    assert any("diverged at step" in text for text in legend), legend


def test_several_learning_rates_side_by_side_and_the_steps_slider():
    demo = gradient_descent_demo(surface="rosenbrock", lr=1e-3, compare=[3e-4, 3e-3])
    assert len(demo.figure.axes[1].lines) == 3
    demo.steps.value = 5
    assert demo.figure.axes[1].get_xlim() == (0, 5)
    with pytest.raises(ValueError, match="unknown surface 'bowl'"):
        gradient_descent_demo(surface="bowl")


def test_learning_rate_explorer_caches_runs_and_sweeps():
    explorer = learning_rate_explorer("xor", lrs=[0.1, 1.0, 3.0], epochs=200)
    first = explorer.runs[1.0]
    explorer.lr.value = 3.0
    explorer.lr.value = 1.0
    assert explorer.runs[1.0] is first and sorted(explorer.runs) == [1.0, 3.0]  # cached, not retrained
    final = explorer.sweep()
    assert sorted(final) == [0.1, 1.0, 3.0] and final[0.1] > final[1.0]  # too small a step learns slowly
    assert "best" in explorer.figure.axes[0].get_title()


def test_learning_rate_explorer_labels_a_diverged_run(mnist):
    explorer = learning_rate_explorer("mlp", lrs=[0.01, 0.1, 100.0], epochs=1)  # starts at the middle one
    # seed 0 measured 35.8 % after one epoch on 3 000 images; chance is 10 %
    assert explorer.diverged == {0.1: False} and explorer.runs[0.1]["train_acc"][-1] > 0.25
    explorer.lr.value = 100.0  # the loss ends far above the untrained model's ~2.3
    assert explorer.diverged[100.0] and "diverged" in explorer.status.value
    final = explorer.sweep()
    assert final[100.0] == float("inf") and "best lr = 0.1" in explorer.figure.axes[0].get_title()

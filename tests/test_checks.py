"""Tests for labkit.checks: what passes, and the exact messages students see when it fails."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit import checks
from labkit.checks import (
    CheckError,
    check_accuracy,
    check_close,
    check_dtype,
    check_equal,
    check_finite,
    check_in_range,
    check_no_calls,
    check_raises,
    check_shape,
)

OVERFLOW = "numerical overflow? subtract the max before exp / use a numerically stable formula"


def failure(check, *args, **kwargs):
    """The message of the CheckError that check(*args, **kwargs) raises."""
    with pytest.raises(CheckError) as info:
        check(*args, **kwargs)
    return str(info.value)


def test_check_error_is_an_assertion_error():
    assert issubclass(CheckError, AssertionError)
    with pytest.raises(AssertionError):
        check_shape(torch.zeros(2), (3,))


# ---------------------------------------------------------------- check_shape

@pytest.mark.parametrize("x, expected", [
    (torch.zeros(64, 10), (64, 10)),
    (torch.zeros(64, 10), torch.Size([64, 10])),
    (torch.zeros(64, 10), [64, 10]),
    (torch.zeros(64, 10), (None, 10)),
    (torch.zeros(3, 1, 28, 28), (None, 1, None, 28)),
    (np.zeros((2, 3)), (2, 3)),
    ([[1, 2, 3], [4, 5, 6]], (2, 3)),
    (2.5, ()),
    (torch.zeros(5), 5),
    (torch.zeros(2, 3, requires_grad=True), (2, 3)),
])
def test_check_shape_passes(x, expected):
    assert check_shape(x, expected) is None


def test_check_shape_message_layout_with_caller_hint():
    msg = failure(check_shape, torch.zeros(64, 784), (64, 10), name="logits",
                  hint="did you apply the last layer?")
    assert msg == ("logits: wrong shape\n"
                   "  expected: (64, 10)\n"
                   "  got:      (64, 784)\n"
                   "  hint:     did you apply the last layer?")


def test_check_shape_without_any_hint_has_no_hint_line():
    msg = failure(check_shape, torch.zeros(3, 5), (3, 4))
    assert msg == "output: wrong shape\n  expected: (3, 4)\n  got:      (3, 5)"


@pytest.mark.parametrize("shape, expected, hint", [
    ((10, 64), (64, 10), "got the transpose -- check the order of dimensions"),
    ((10,), (1, 10), "the batch dimension is missing -- use .unsqueeze(0)"),
    ((10,), (None, 10), "the batch dimension is missing -- use .unsqueeze(0)"),
    ((1, 1, 10), (None, 10), "there is an extra batch dimension -- use .squeeze(0)"),
    ((1, 10), (10,), "there is an extra batch dimension -- use .squeeze(0)"),
    ((64, 1), (64,), "there is an extra dimension of size 1 -- use .squeeze(1)"),
    ((3, 28), (3, 1, 28), "a dimension of size 1 is missing -- use .unsqueeze(1)"),
    ((2, 28, 28, 1), (2, 1, 28, 28), "right sizes in the wrong order -- check .permute() / .transpose()"),
    ((64, 1, 28, 28), (64, 784),
     "same number of elements, different shape -- check .reshape() / .view() / .flatten()"),
])
def test_check_shape_builtin_hints(shape, expected, hint):
    msg = failure(check_shape, torch.zeros(shape), expected)
    assert msg.endswith(f"\n  hint:     {hint}")


def test_check_shape_wildcards_are_shown_as_any_and_still_compared():
    msg = failure(check_shape, torch.zeros(64, 784), (None, 10), name="logits")
    assert "  expected: (any, 10)\n  got:      (64, 784)" in msg
    assert "hint" not in msg


def test_check_shape_one_dimensional_shapes_keep_the_tuple_comma():
    msg = failure(check_shape, torch.zeros(3), (4,))
    assert "  expected: (4,)\n  got:      (3,)" in msg


def test_check_shape_caller_hint_first_then_builtin_hint():
    msg = failure(check_shape, torch.zeros(10, 64), (64, 10), hint="see section 2")
    assert msg.endswith("  hint:     see section 2\n"
                        "            got the transpose -- check the order of dimensions")


def test_check_shape_of_none_says_return_is_missing():
    msg = failure(check_shape, None, (2,), name="h")
    assert msg == ("h: wrong type\n"
                   "  expected: a number, a tensor, a NumPy array or a list of numbers\n"
                   "  got:      None\n"
                   "  hint:     got None -- did you forget to `return` the result?")


def test_check_shape_ragged_list_is_a_wrong_type():
    msg = failure(check_shape, [[1, 2], [3]], (2, 2))
    assert msg.startswith("output: wrong type\n")
    assert "  got:      list [[1, 2], [3]]" in msg


# ---------------------------------------------------------------- check_dtype

def test_check_dtype_passes():
    assert check_dtype(torch.zeros(3), torch.float32) is None
    assert check_dtype(torch.tensor([0, 1]), torch.int64) is None


def test_check_dtype_float64_instead_of_float32():
    msg = failure(check_dtype, torch.zeros(3, dtype=torch.float64), torch.float32, name="probs")
    assert msg == ("probs: wrong dtype\n"
                   "  expected: torch.float32\n"
                   "  got:      torch.float64\n"
                   "  hint:     use .float() / torch.float32 (NumPy arrays are float64 by default)")


@pytest.mark.parametrize("got, expected, hint", [
    (torch.int64, torch.float32, "got integers -- use .float()"),
    (torch.bool, torch.float32, "got integers -- use .float()"),
    (torch.float32, torch.int64, "got floats -- use .long()"),
    (torch.int32, torch.int64, "use .to(torch.int64)"),
    (torch.float32, torch.float64, "use .to(torch.float64)"),
])
def test_check_dtype_builtin_hints(got, expected, hint):
    msg = failure(check_dtype, torch.zeros(2, dtype=got), expected)
    assert f"  expected: {expected}\n  got:      {got}\n  hint:     {hint}" in msg


def test_check_dtype_numpy_array_where_a_tensor_was_expected():
    msg = failure(check_dtype, np.zeros(3, dtype=np.float32), torch.float32, name="x")
    assert msg == ("x: wrong type\n"
                   "  expected: a torch.Tensor of dtype torch.float32\n"
                   "  got:      numpy.ndarray of shape (3,), dtype float32\n"
                   "  hint:     this is a NumPy array -- use torch.as_tensor(x)")


def test_check_dtype_rejects_a_non_dtype_expected_value():
    with pytest.raises(TypeError):
        check_dtype(torch.zeros(3), "float32")


# ---------------------------------------------------------------- check_close

@pytest.mark.parametrize("actual, expected", [
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])),
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-6])),
    (2.5, 2.5),
    (2.5, 2.5 + 1e-7),
    (torch.tensor(2.5), 2.5),
    (np.array([0.1, 0.2]), np.array([0.1, 0.2])),
    ([0.1, 0.2], [0.1, 0.2]),
    (torch.tensor([0.5, 0.25], dtype=torch.float32), np.array([0.5, 0.25])),  # mixed kinds: no dtype check
    (torch.tensor([0, 1]), torch.tensor([0.0, 1.0])),  # dtype is only compared between floating dtypes
    (torch.tensor([1e30, -3e38]), torch.tensor([1e30, -3e38])),
    (torch.tensor([float("inf"), 1.0]), torch.tensor([float("inf"), 1.0])),  # expected inf is fine
    (torch.tensor([float("nan")]), torch.tensor([float("nan")])),
    (torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.bfloat16)),
])
def test_check_close_passes(actual, expected):
    assert check_close(actual, expected) is None


def test_check_close_accepts_tensors_that_require_grad():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    out = w * 2
    check_close(out, torch.tensor([2.0, 4.0]))
    check_close(out, out.detach().clone())
    out.sum().backward()  # the graph was left intact
    assert w.grad.tolist() == [2.0, 2.0]


def test_check_close_reports_count_worst_element_and_tolerance():
    actual = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]])
    expected = torch.tensor([[1.0, 2.1, 3.0], [4.0, 5.0, 6.0]])
    msg = failure(check_close, actual, expected, name="softmax")
    assert msg == ("softmax: 2 of 6 values differ (rtol=1e-05, atol=1e-06); worst at index (1, 2)\n"
                   "  expected: 6.0\n"
                   "  got:      6.5 (abs diff 0.5)")


def test_check_close_scalars_and_custom_tolerance():
    msg = failure(check_close, 2.5, 2.4, name="loss", rtol=0, atol=1e-3, hint="use the mean")
    assert msg == ("loss: wrong value (rtol=0, atol=0.001)\n"
                   "  expected: 2.4\n"
                   "  got:      2.5 (abs diff 0.1)\n"
                   "  hint:     use the mean")


def test_check_close_huge_values_are_compared_without_overflow():
    msg = failure(check_close, torch.tensor([3e38, 1.0]), torch.tensor([-3e38, 1.0]))
    assert "1 of 2 values differ" in msg and "worst at index (0,)" in msg
    assert "  expected: -3e+38\n  got:      3e+38 (abs diff 6e+38)" in msg
    msg = failure(check_close, np.array([1e308]), np.array([-1e308]))
    assert "(abs diff inf)" in msg
    check_close(torch.tensor([1e30]), torch.tensor([1e30 * (1 + 1e-6)]))  # relative tolerance


def test_check_close_type_comes_first():
    # wrong type, wrong shape and wrong values: the type is reported
    msg = failure(check_close, np.zeros(3), torch.ones(2, 2), name="probs")
    assert msg == ("probs: wrong type\n"
                   "  expected: a torch.Tensor\n"
                   "  got:      numpy.ndarray of shape (3,), dtype float64\n"
                   "  hint:     this is a NumPy array -- use torch.as_tensor(x)")


def test_check_close_python_number_where_a_tensor_was_expected():
    msg = failure(check_close, 2.3, torch.tensor(2.3), name="loss")
    assert "loss: wrong type\n  expected: a torch.Tensor\n  got:      float 2.3\n" in msg
    assert "(.item() turns it into a number)" in msg


def test_check_close_shape_before_values():
    msg = failure(check_close, torch.zeros(10, 64), torch.ones(64, 10), name="logits")
    assert msg == ("logits: wrong shape\n"
                   "  expected: (64, 10)\n"
                   "  got:      (10, 64)\n"
                   "  hint:     got the transpose -- check the order of dimensions")


def test_check_close_dtype_before_values():
    actual = torch.tensor([1.0, 5.0], dtype=torch.float64)
    msg = failure(check_close, actual, torch.tensor([1.0, 2.0]), name="probs")
    assert msg == ("probs: wrong dtype\n"
                   "  expected: torch.float32\n"
                   "  got:      torch.float64\n"
                   "  hint:     use .float() / torch.float32 (NumPy arrays are float64 by default)")


def test_check_close_dtype_of_numpy_arrays():
    msg = failure(check_close, np.zeros(2, dtype=np.float32), np.zeros(2))
    assert "  expected: float64\n  got:      float32\n  hint:     use .astype(np.float64)" in msg


def test_check_close_nan_before_values():
    actual = torch.tensor([[0.5, 0.5], [float("nan"), 9.0]])
    msg = failure(check_close, actual, torch.full((2, 2), 0.5), name="softmax", hint="compare with torch.softmax")
    assert msg == ("softmax: NaN or inf in 1 of 4 values\n"
                   "  expected: finite values only\n"
                   "  got:      nan at index (1, 0)\n"
                   "  hint:     compare with torch.softmax\n"
                   f"            {OVERFLOW}")


def test_check_close_inf_reported_with_first_index():
    actual = torch.tensor([1.0, float("inf"), float("-inf")])
    msg = failure(check_close, actual, torch.ones(3))
    assert msg.startswith("output: NaN or inf in 2 of 3 values\n")
    assert "  got:      inf at index (1,)\n" in msg
    assert msg.endswith(f"  hint:     {OVERFLOW}")


def test_check_close_nan_scalar():
    msg = failure(check_close, float("nan"), 1.0, name="loss")
    assert msg == f"loss: NaN or inf\n  expected: finite values only\n  got:      nan\n  hint:     {OVERFLOW}"


def test_check_close_expected_nan_is_not_matched_by_a_number():
    msg = failure(check_close, torch.tensor([1.0]), torch.tensor([float("nan")]))
    assert "1 of 1 values differ" in msg and "  expected: nan\n  got:      1.0" in msg


def test_check_close_none_and_bad_expected():
    assert "did you forget to `return` the result?" in failure(check_close, None, [1.0])
    with pytest.raises(TypeError):
        check_close(torch.zeros(1), "zero")


# ---------------------------------------------------------------- check_finite

@pytest.mark.parametrize("x", [torch.zeros(3), np.ones(2), [1.0, 2.0], 3.0, torch.tensor([1, 2]),
                               torch.ones(2, requires_grad=True)])
def test_check_finite_passes(x):
    assert check_finite(x) is None


def test_check_finite_reports_count_and_first_index():
    x = torch.zeros(3, 4)
    x[2, 1], x[2, 3] = float("inf"), float("nan")
    msg = failure(check_finite, x, name="sigmoid", hint="try x = 1000")
    assert msg == ("sigmoid: NaN or inf in 2 of 12 values\n"
                   "  expected: finite values only\n"
                   "  got:      inf at index (2, 1)\n"
                   "  hint:     try x = 1000\n"
                   f"            {OVERFLOW}")


def test_check_finite_numpy_and_lists():
    assert "got:      nan at index (1,)" in failure(check_finite, np.array([0.0, np.nan]))
    assert "got:      -inf at index (0,)" in failure(check_finite, [float("-inf")])


# ---------------------------------------------------------------- check_accuracy

@pytest.mark.parametrize("accuracy, threshold", [
    (0.93, 0.92), (0.93, 92), (93, 0.92), (93.0, 92), (92, 0.92), (0.92, 92), (1, 99.9), (100, 1),
    (torch.tensor(0.95), 90), (torch.tensor([0.95]), 0.9), (np.float32(0.95), 90), (np.array(95.0), 90),
])
def test_check_accuracy_passes(accuracy, threshold):
    assert check_accuracy(accuracy, threshold) is None


def test_check_accuracy_fraction_against_percent_threshold():
    msg = failure(check_accuracy, 0.884, 92, hint="train for more epochs")
    assert msg == ("test accuracy: too low\n"
                   "  expected: >= 92.0 %\n"
                   "  got:      88.4 % (given as the fraction 0.884)\n"
                   "  hint:     train for more epochs")


def test_check_accuracy_percent_against_fraction_threshold():
    msg = failure(check_accuracy, 88.4, 0.92, name="MLP test accuracy")
    assert msg == ("MLP test accuracy: too low\n"
                   "  expected: >= 92.0 %\n"
                   "  got:      88.4 % (given as a percentage)")


def test_check_accuracy_uses_enough_digits_to_show_the_difference():
    msg = failure(check_accuracy, 0.91996, 0.92)
    assert "  expected: >= 92.000 %\n  got:      91.996 % (given as the fraction 0.91996)" in msg


def test_check_accuracy_tensor_of_predictions_is_not_a_number():
    msg = failure(check_accuracy, torch.tensor([3, 1, 4]), 0.9)
    assert msg == ("test accuracy: not a number\n"
                   "  expected: one number: a fraction (0..1) or a percentage (0..100)\n"
                   "  got:      torch.Tensor of shape (3,), torch.int64\n"
                   "  hint:     compute the accuracy, e.g. (predictions == labels).float().mean().item()")


@pytest.mark.parametrize("accuracy", [None, True, "0.9", [0.9]])
def test_check_accuracy_other_non_numbers(accuracy):
    assert failure(check_accuracy, accuracy, 0.9).startswith("test accuracy: not a number\n")


def test_check_accuracy_count_instead_of_fraction():
    msg = failure(check_accuracy, 9123, 0.9)
    assert msg == ("test accuracy: not a valid accuracy\n"
                   "  expected: a fraction (0..1) or a percentage (0..100)\n"
                   "  got:      9123.0\n"
                   "  hint:     did you forget to divide by the number of samples?")


@pytest.mark.parametrize("accuracy", [-0.1, float("nan")])
def test_check_accuracy_out_of_range(accuracy):
    assert failure(check_accuracy, accuracy, 0.9).startswith("test accuracy: not a valid accuracy\n")


@pytest.mark.parametrize("threshold", [-1, 101, "90", None, True])
def test_check_accuracy_bad_threshold_is_the_test_writers_error(threshold):
    with pytest.raises(ValueError):
        check_accuracy(0.9, threshold)


# ---------------------------------------------------------------- check_equal

@pytest.mark.parametrize("actual, expected", [
    (61706, 61706), ("relu", "relu"), ((1, 2), (1, 2)), ([0, 1], [0, 1]),
    (torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 1, 0])),
    (np.array([1, 2]), np.array([1, 2])),
    (torch.tensor([0, 1]), [0, 1]),
    (torch.tensor([1.0, float("nan")]), torch.tensor([1.0, float("nan")])),
])
def test_check_equal_passes(actual, expected):
    assert check_equal(actual, expected) is None


def test_check_equal_python_values():
    msg = failure(check_equal, 61000, 61706, name="parameter count", hint="count the biases too")
    assert msg == ("parameter count: wrong value\n"
                   "  expected: 61706\n"
                   "  got:      61000\n"
                   "  hint:     count the biases too")
    assert "  expected: 'relu'\n  got:      'tanh'" in failure(check_equal, "tanh", "relu")
    assert "did you forget to `return` the result?" in failure(check_equal, None, 3)


def test_check_equal_tensors_report_first_difference():
    msg = failure(check_equal, torch.tensor([[0, 1], [1, 1]]), torch.tensor([[0, 1], [1, 0]]), name="XOR")
    assert msg == ("XOR: 1 of 4 values differ; first at index (1, 1)\n"
                   "  expected: 0\n"
                   "  got:      1")


def test_check_equal_checks_type_shape_then_dtype():
    assert "wrong type" in failure(check_equal, [0, 1], torch.tensor([0, 1]))
    assert "wrong shape" in failure(check_equal, torch.tensor([[5, 1]]), torch.tensor([0, 1]))
    msg = failure(check_equal, torch.tensor([5, 1], dtype=torch.int32), torch.tensor([0, 1]))
    assert msg == ("output: wrong dtype\n"
                   "  expected: torch.int64\n"
                   "  got:      torch.int32\n"
                   "  hint:     use .to(torch.int64)")
    msg = failure(check_equal, torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), name="predictions")
    assert "got floats -- use .long()" in msg


def test_check_equal_scalar_tensor():
    msg = failure(check_equal, torch.tensor(3), torch.tensor(4))
    assert msg == "output: wrong value\n  expected: 4\n  got:      3"


# ---------------------------------------------------------------- check_in_range

@pytest.mark.parametrize("x, low, high, exclusive", [
    (0.5, 0, 1, False), (0, 0, 1, False), (1, 0, 1, False), (0.5, 0, 1, True), (1e-5, None, 1e-3, True),
    (2.6, 0.1, None, True), (torch.tensor([0.2, 0.7]), 0, 1, False), (np.array([3, 4]), 3, None, False),
    ([0.01, 1.0], 0.0099, 1.0001, False), (torch.tensor(float("inf")), 0, None, False),
])
def test_check_in_range_passes(x, low, high, exclusive):
    assert check_in_range(x, low, high, exclusive=exclusive) is None


def test_check_in_range_number_below_an_exclusive_bound():
    msg = failure(check_in_range, 0.013, low=0.1, exclusive=True, name="ReLU: first / last layer gradient",
                  hint="the ReLU network should not lose its gradient")
    assert msg == ("ReLU: first / last layer gradient: out of range\n"
                   "  expected: > 0.1\n"
                   "  got:      0.013\n"
                   "  hint:     the ReLU network should not lose its gradient")


@pytest.mark.parametrize("x, low, high, exclusive, expected", [
    (0.5, None, 1e-3, True, "< 0.001"), (2.0, None, 1, False, "<= 1"), (-1.0, 0, None, False, ">= 0"),
    (0.0, 0, None, True, "> 0"), (1.5, 0, 1, False, "between 0 and 1"), (1.0, 0, 1, True, "strictly between 0 and 1"),
])
def test_check_in_range_says_which_range(x, low, high, exclusive, expected):
    msg = failure(check_in_range, x, low, high, exclusive=exclusive)
    assert msg == f"value: out of range\n  expected: {expected}\n  got:      {x}"


def test_check_in_range_tensor_reports_count_and_first_index():
    msg = failure(check_in_range, torch.tensor([[0.5, -1.0], [2.0, 0.0]]), 0, 1, name="probs")
    assert msg == ("probs: 2 of 4 values out of range; first at index (0, 1)\n"
                   "  expected: between 0 and 1\n"
                   "  got:      -1.0")


def test_check_in_range_nan_is_in_no_range():
    assert failure(check_in_range, float("nan"), low=0).endswith("  got:      nan")
    assert "1 of 2 values out of range" in failure(check_in_range, torch.tensor([0.5, float("nan")]), high=1)


def test_check_in_range_wrong_type_and_missing_bounds():
    assert failure(check_in_range, None, 0, 1, name="ratio").startswith("ratio: wrong type\n")
    with pytest.raises(ValueError, match="give low, high or both"):
        check_in_range(0.5)


# ---------------------------------------------------------------- check_raises

def pick_optimizer(name, lr=0.1):
    if name not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {name!r}: use sgd or adam")
    return name, lr


def test_check_raises_passes():
    assert check_raises(pick_optimizer, ValueError, "rmsprop") is None
    assert check_raises(pick_optimizer, ValueError, "rmsprop", lr=0.5, match="unknown optimizer") is None
    assert check_raises(pick_optimizer, (TypeError, ValueError), "rmsprop", match=r"use \w+ or adam") is None
    assert check_raises(pick_optimizer, ValueError, "x(", match="'x('") is None  # not a valid regex: a substring


def test_check_raises_nothing_raised():
    msg = failure(check_raises, pick_optimizer, ValueError, "sgd", name="pick_optimizer('sgd')",
                  hint="raise ValueError for an unknown name")
    assert msg == ("pick_optimizer('sgd'): no exception\n"
                   "  expected: raises ValueError\n"
                   "  got:      no exception; it returned tuple ('sgd', 0.1)\n"
                   "  hint:     raise ValueError for an unknown name")


def test_check_raises_shows_what_was_returned_on_one_line():
    msg = failure(check_raises, lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU()), ValueError, name="build")
    assert msg.splitlines()[2] == ("  got:      no exception; it returned Sequential( (0): Linear(in_features=2, "
                                   "out_features=3, bi...")
    assert msg.count("\n") == 2
    assert "it returned torch.Tensor of shape (2,), torch.float32" in failure(check_raises, torch.zeros, ValueError, 2)


def test_check_raises_default_name_and_none_returned():
    msg = failure(check_raises, print, ValueError, end="")
    assert msg == "print(...): no exception\n  expected: raises ValueError\n  got:      no exception; it returned None"


def test_check_raises_another_exception():
    msg = failure(check_raises, pick_optimizer, ValueError, name="pick_optimizer()")
    assert msg == ("pick_optimizer(): wrong exception\n"
                   "  expected: raises ValueError\n"
                   "  got:      raised TypeError: pick_optimizer() missing 1 required positional argument: 'name'")
    msg = failure(check_raises, lambda: {}["a"], (ValueError, TypeError), name="lookup")
    assert "  expected: raises ValueError or TypeError\n  got:      raised KeyError: 'a'" in msg


def test_check_raises_message_that_does_not_match():
    msg = failure(check_raises, pick_optimizer, ValueError, "rmsprop", name="pick_optimizer('rmsprop')",
                  match="choose one of")
    assert msg == ("pick_optimizer('rmsprop'): wrong error message\n"
                   "  expected: ValueError with a message matching 'choose one of'\n"
                   "  got:      raised ValueError: unknown optimizer 'rmsprop': use sgd or adam")


def test_check_raises_a_failing_check_is_not_the_expected_exception():
    def checks_itself():
        check_equal(1, 2)
    assert "got:      raised CheckError: output: wrong value" in failure(check_raises, checks_itself, ValueError)
    assert check_raises(checks_itself, AssertionError) is None


def test_check_raises_rejects_a_non_exception():
    with pytest.raises(TypeError, match="exception must be an exception class"):
        check_raises(pick_optimizer, "ValueError", "x")


# ---------------------------------------------------------------- check_no_calls

SOFTMAXES = ["softmax", "log_softmax", "cross_entropy", torch.softmax, F.softmax]
Z = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))


def own_softmax(z):
    exps = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return exps / exps.sum(dim=1, keepdim=True)


def functional_softmax(z):
    return F.softmax(z, dim=1)


def method_softmax(z):
    return z.softmax(dim=1)


alias = torch.softmax


def aliased_softmax(z):
    return alias(z, 1)


def hidden_softmax(z):
    return functional_softmax(z)  # through a helper: only running it shows the call


def module_softmax(z):
    return nn.LogSoftmax(dim=1)(z).exp()


def test_check_no_calls_passes_for_own_code():
    assert check_no_calls(own_softmax, SOFTMAXES) is None
    assert check_no_calls(own_softmax, SOFTMAXES, args=(Z,)) is None
    assert check_no_calls(lambda z: own_softmax(z), SOFTMAXES, args=(Z,)) is None  # its own helper is fine


def test_check_no_calls_message_layout():
    msg = failure(check_no_calls, functional_softmax, SOFTMAXES, name="softmax(z)",
                  hint="write it with torch.exp, .max and .sum")
    assert msg == ("softmax(z): uses a function it must not call\n"
                   "  expected: none of softmax, log_softmax, cross_entropy, torch.softmax, "
                   "torch.nn.functional.softmax\n"
                   "  got:      F.softmax (in the source)\n"
                   "  hint:     write it with torch.exp, .max and .sum")


@pytest.mark.parametrize("fn, args, got", [
    (functional_softmax, None, "F.softmax (in the source), F (= torch.nn.functional)"),
    (method_softmax, None, "z.softmax (in the source)"),
    (aliased_softmax, None, "alias (= torch.softmax)"),
    (module_softmax, None, "nn.LogSoftmax (in the source)"),
    (hidden_softmax, (Z,), "torch.nn.functional.softmax (called)"),
    (method_softmax, (Z,), "z.softmax (in the source), Tensor.softmax (called)"),
])
def test_check_no_calls_finds_names_objects_and_calls(fn, args, got):
    banned = [*SOFTMAXES, F] if fn is functional_softmax else SOFTMAXES
    msg = failure(check_no_calls, fn, banned, args=args)
    assert msg.startswith(f"{fn.__name__}: uses a function it must not call\n")
    assert msg.splitlines()[2] == f"  got:      {got}"


def test_check_no_calls_without_running_misses_what_a_helper_calls():
    assert check_no_calls(hidden_softmax, SOFTMAXES) is None
    with pytest.raises(CheckError, match="called"):
        check_no_calls(hidden_softmax, SOFTMAXES, args=(Z,))


def test_check_no_calls_sees_closures_lambdas_and_comprehensions():
    def make():
        banned_fn = torch.softmax
        return lambda z: [banned_fn(row, 0) for row in z]
    assert "banned_fn (= torch.softmax)" in failure(check_no_calls, make(), SOFTMAXES)


def test_check_no_calls_names_ignore_case_and_underscores():
    def nll(z):
        return nn.NLLLoss()(torch.log(own_softmax(z)), torch.zeros(len(z), dtype=torch.long))
    assert "nn.NLLLoss (in the source)" in failure(check_no_calls, nll, ["nll_loss"])
    def expit(x):
        return torch.special.expit(x)
    assert "torch.special.expit (in the source), torch.special_expit (called)" in failure(
        check_no_calls, expit, ["expit"], args=(Z,))


def test_check_no_calls_reads_the_bytecode_when_the_source_is_no_whole_statement():
    msg = failure(check_no_calls,
                  lambda x: x.sigmoid(), ["sigmoid"])  # getsource gives this line and the one above: no statement
    assert msg.endswith("  got:      .sigmoid (in the code)")


def test_check_no_calls_long_lists_are_shortened():
    names = [f"f{i}" for i in range(12)]
    msg = failure(check_no_calls, lambda x: x.f3(), names)
    assert "  expected: none of f0, f1, f2, f3, f4, f5, f6, f7, ... (12 in all)\n" in msg


def test_check_no_calls_without_source_still_checks_objects_and_calls():
    namespace = {"torch": torch}
    exec("def softmax(z):\n    return torch.softmax(z, 1)\n", namespace)  # no source file to read
    assert failure(check_no_calls, namespace["softmax"], SOFTMAXES, args=(Z,)).endswith(
        "  got:      .softmax (in the code), torch.softmax (called)")


def test_check_no_calls_needs_something_banned():
    with pytest.raises(ValueError, match="banned is empty"):
        check_no_calls(own_softmax, [])


def test_check_no_calls_cannot_be_fooled_by_patching_torch(monkeypatch):
    import inspect

    monkeypatch.setattr(torch.overrides, "TorchFunctionMode", object)  # a student breaking the recorder
    monkeypatch.setattr(inspect, "getsource", lambda fn: "def f():\n    pass\n")  # ... and hiding the source
    with pytest.raises(CheckError, match="called"):
        check_no_calls(hidden_softmax, SOFTMAXES, args=(Z,))
    with pytest.raises(CheckError, match=r"F\.softmax \(in the source\)"):
        check_no_calls(functional_softmax, SOFTMAXES)


# ---------------------------------------------------------------- robustness

def test_student_monkeypatching_cannot_make_checks_pass(monkeypatch):
    # A student cell runs before the graded cells in the same kernel.
    def always_true(*args, **kwargs):
        return True

    monkeypatch.setattr(torch, "allclose", always_true)
    monkeypatch.setattr(torch, "equal", always_true)
    monkeypatch.setattr(torch, "isfinite", lambda x: torch.ones_like(x, dtype=torch.bool))
    monkeypatch.setattr(np, "allclose", always_true)
    monkeypatch.setattr(np, "array_equal", always_true)
    monkeypatch.setattr(np, "isfinite", lambda x: np.ones(np.shape(x), dtype=bool))
    monkeypatch.setattr(np, "isnan", lambda x: np.zeros(np.shape(x), dtype=bool))
    monkeypatch.setattr(torch.Tensor, "detach", lambda self: torch.zeros_like(self))
    monkeypatch.setattr(torch.Tensor, "numpy", lambda self, force=False: np.zeros(1))
    monkeypatch.setattr(checks, "CheckError", Exception)  # a student "fixing" the failing test

    assert torch.allclose(torch.zeros(3), torch.ones(3))  # the patch is active
    with pytest.raises(CheckError, match="3 of 3 values differ"):
        check_close(torch.zeros(3), torch.ones(3))
    with pytest.raises(CheckError, match="NaN or inf"):
        check_close(torch.tensor([float("nan")]), torch.tensor([1.0]))
    with pytest.raises(CheckError, match="NaN or inf"):
        check_finite(torch.tensor([float("inf")]))
    with pytest.raises(CheckError, match="values differ"):
        check_equal(torch.tensor([1, 2]), torch.tensor([1, 3]))
    check_close(torch.ones(3), torch.ones(3))  # and correct answers still pass


def test_monkeypatch_is_undone_after_the_test():
    assert not torch.allclose(torch.zeros(3), torch.ones(3))
    assert checks.CheckError is CheckError

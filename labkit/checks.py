"""Assertion helpers for the test cells of the lab notebooks.

Every helper returns None when the check passes and raises CheckError (an
AssertionError, so nbgrader marks the test as failed) otherwise, with the same
message layout everywhere::

    logits: wrong shape
      expected: (64, 10)
      got:      (64, 784)
      hint:     did you apply the last layer?

check_close and check_equal check in the order a student should fix things:
type, shape, dtype, NaN/inf, then values. A `hint` from the caller comes first;
a built-in hint (transposed shape, float64 instead of float32, ...) follows on
the next line when one applies.
"""

import math

import numpy as np
import torch

__all__ = ["CheckError", "check_shape", "check_dtype", "check_close",
           "check_finite", "check_accuracy", "check_equal", "trace_layers"]


class CheckError(AssertionError):
    """A failed lab check; the message says what was expected, what was got, what to try."""


# Student cells run in the same kernel before the graded test cells and may
# replace torch.allclose, np.isfinite, Tensor.detach, ... (by accident or not).
# So everything the checks use is bound here, at import time, and values are
# compared in NumPy on detached CPU copies.
_CheckError = CheckError
_Tensor, _ndarray, _torch_dtype = torch.Tensor, np.ndarray, torch.dtype
_tensor_numpy, _tensor_float = torch.Tensor.numpy, torch.Tensor.float
_float32, _float64 = torch.float32, torch.float64
_asarray, _errstate, _unravel = np.asarray, np.errstate, np.unravel_index
_isfinite, _isnan, _abs, _argmax, _where = np.isfinite, np.isnan, np.abs, np.argmax, np.where
_np_float64, _np_number, _np_integer, _np_bool = np.float64, np.number, np.integer, np.bool_
_prod = math.prod

_OVERFLOW_HINT = "numerical overflow? subtract the max before exp / use a numerically stable formula"
_NO_RETURN_HINT = "got None -- did you forget to `return` the result?"


def _fail(name, problem, expected, got, hint=None, builtin_hint=None):
    lines = [f"{name}: {problem}", f"  expected: {expected}", f"  got:      {got}"]
    hints = [h for h in (hint, builtin_hint) if h]
    if hints:
        lines.append("  hint:     " + "\n            ".join(hints))
    raise _CheckError("\n".join(lines))


def _fmt_shape(shape):
    dims = ["any" if d is None else str(int(d)) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _fmt_value(v):
    if isinstance(v, (bool, _np_bool)):
        return str(bool(v))
    if isinstance(v, (int, _np_integer)):
        return str(int(v))
    text = f"{float(v):.8g}"
    return text + ".0" if text.lstrip("-").isdigit() else text


def _describe(x):
    if isinstance(x, _Tensor):
        return f"torch.Tensor of shape {_fmt_shape(x.shape)}, {x.dtype}"
    if isinstance(x, _ndarray):
        return f"numpy.ndarray of shape {_fmt_shape(x.shape)}, dtype {x.dtype}"
    text = repr(x) if len(repr(x)) <= 60 else repr(x)[:57] + "..."
    return text if x is None else f"{type(x).__name__} {text}"


def _type_hint(x):
    if x is None:
        return _NO_RETURN_HINT
    if isinstance(x, _ndarray):
        return "this is a NumPy array -- use torch.as_tensor(x)"
    if isinstance(x, (list, tuple)):
        return f"this is a Python {type(x).__name__} -- use torch.tensor(x) or torch.stack(x)"
    if isinstance(x, (int, float)):
        return "this is a Python number -- keep the tensor (.item() turns it into a number)"
    return None


def _to_numpy(x):
    """x as a NumPy array of numbers (a detached CPU copy for a tensor), or None."""
    if isinstance(x, _Tensor):
        try:
            return _tensor_numpy(x, force=True)
        except TypeError:  # bfloat16 and friends have no NumPy twin
            return _tensor_numpy(_tensor_float(x), force=True)
    try:
        arr = _asarray(x)
    except (ValueError, TypeError, RuntimeError):  # ragged lists, tensors that need grad
        return None
    return arr if arr.dtype.kind in "biuf" else None


def _student_array(x, name, hint):
    arr = _to_numpy(x)
    if arr is None:
        _fail(name, "wrong type", "a number, a tensor, a NumPy array or a list of numbers",
              _describe(x), hint, _type_hint(x))
    return arr


def _shape_matches(got, expected):
    return len(got) == len(expected) and all(e is None or g == e for g, e in zip(got, expected, strict=False))


def _shape_hint(got, expected):
    for i in range(len(got)):  # one dimension of size 1 too many?
        if got[i] == 1 and _shape_matches(got[:i] + got[i + 1:], expected):
            what = "an extra batch dimension" if i == 0 else "an extra dimension of size 1"
            return f"there is {what} -- use .squeeze({i})"
    for i in range(len(expected)):  # one dimension of size 1 missing?
        if expected[i] in (1, None) and _shape_matches(got, expected[:i] + expected[i + 1:]):
            what = "the batch dimension is" if i == 0 else "a dimension of size 1 is"
            return f"{what} missing -- use .unsqueeze({i})"
    if len(got) == 2 and _shape_matches(got[::-1], expected):
        return "got the transpose -- check the order of dimensions"
    if None in expected:
        return None
    if sorted(got) == sorted(expected):
        return "right sizes in the wrong order -- check .permute() / .transpose()"
    if _prod(got) == _prod(expected):
        return "same number of elements, different shape -- check .reshape() / .view() / .flatten()"
    return None


def _dtype_hint(got, expected):
    if got == _float64 and expected == _float32:
        return "use .float() / torch.float32 (NumPy arrays are float64 by default)"
    if expected.is_floating_point and not got.is_floating_point:
        return "got integers -- use .float() (torch.tensor([0, 1]) is int64, [0., 1.] float32)"
    if got.is_floating_point and not expected.is_floating_point:
        return "got floats -- use .long() (labels are int64; predictions: .argmax(dim=1))"
    return f"use .to({expected})"


def _first_index(mask):
    return _unravel(int(_argmax(mask)), mask.shape)


def _report_nonfinite(a, bad, name, hint):
    index = _first_index(bad)
    problem = "NaN or inf" if a.ndim == 0 else f"NaN or inf in {int(bad.sum())} of {a.size} values"
    at = f" at index {_fmt_shape(index)}" if a.ndim else ""
    _fail(name, problem, "finite values only", _fmt_value(a[index]) + at, hint, _OVERFLOW_HINT)


def _check_alike(actual, expected, name, hint, floating_only):
    """Type, shape and dtype checks shared by check_close and check_equal; returns two arrays."""
    if isinstance(expected, _Tensor) and not isinstance(actual, _Tensor):
        _fail(name, "wrong type", "a torch.Tensor", _describe(actual), hint, _type_hint(actual))
    a, e = _student_array(actual, name, hint), _to_numpy(expected)
    if e is None:
        raise TypeError(f"{name}: the expected value is not numeric: {_describe(expected)}")
    if a.shape != e.shape:
        _fail(name, "wrong shape", _fmt_shape(e.shape), _fmt_shape(a.shape), hint,
              _shape_hint(a.shape, e.shape))
    tensors = isinstance(actual, _Tensor) and isinstance(expected, _Tensor)
    if tensors or (isinstance(actual, _ndarray) and isinstance(expected, _ndarray)):
        floating = a.dtype.kind == "f" and e.dtype.kind == "f"
        if actual.dtype != expected.dtype and (floating or not floating_only):
            builtin = (_dtype_hint(actual.dtype, expected.dtype) if tensors
                       else f"use .astype(np.{expected.dtype})")
            _fail(name, "wrong dtype", expected.dtype, actual.dtype, hint, builtin)
    return a, e


def check_shape(x, expected, name="output", hint=None):
    """Check that `x` (tensor, array, number or nested list) has shape `expected`.

    `expected` is a tuple, list or torch.Size; None matches any size.

    >>> check_shape(model(x), (None, 10), name="logits")
    """
    expected = (expected,) if isinstance(expected, int) else tuple(expected)
    got = tuple(x.shape) if isinstance(x, (_Tensor, _ndarray)) else _student_array(x, name, hint).shape
    if not _shape_matches(got, expected):
        _fail(name, "wrong shape", _fmt_shape(expected), _fmt_shape(got), hint,
              _shape_hint(got, expected))


def check_dtype(x, expected, name="output", hint=None):
    """Check that `x` is a tensor of torch dtype `expected`.

    >>> check_dtype(labels, torch.int64, name="labels")
    """
    if not isinstance(expected, _torch_dtype):
        raise TypeError(f"check_dtype: expected must be a torch dtype, got {expected!r}")
    if not isinstance(x, _Tensor):
        _fail(name, "wrong type", f"a torch.Tensor of dtype {expected}", _describe(x), hint,
              _type_hint(x))
    if x.dtype != expected:
        _fail(name, "wrong dtype", expected, x.dtype, hint, _dtype_hint(x.dtype, expected))


def check_close(actual, expected, name="output", rtol=1e-5, atol=1e-6, hint=None):
    """Check |actual - expected| <= atol + rtol * |expected| for every element.

    In order: type (a tensor is required when `expected` is one), shape, dtype
    (only when both are tensors, or both arrays, of floating dtype), NaN/inf in
    `actual` (allowed where `expected` holds the same value), then values: the
    message says how many elements differ and shows the worst one.

    >>> check_close(my_softmax(logits), torch.softmax(logits, dim=1), name="softmax")
    """
    a, e = _check_alike(actual, expected, name, hint, floating_only=True)
    with _errstate(all="ignore"):  # inf - inf and huge values are handled below
        same = (a == e) | (_isnan(a) & _isnan(e))
        if (~_isfinite(a) & ~same).any():
            _report_nonfinite(a, ~_isfinite(a) & ~same, name, hint)
        a64, e64 = a.astype(_np_float64), e.astype(_np_float64)
        diff = _abs(a64 - e64)
        bad = ~(diff <= atol + rtol * _abs(e64)) & ~same
    if bad.any():
        index = _unravel(int(_argmax(_where(bad, diff, -1.0))), a.shape)  # largest diff
        tolerance = f"rtol={rtol:g}, atol={atol:g}"
        problem = (f"wrong value ({tolerance})" if a.ndim == 0 else
                   f"{int(bad.sum())} of {a.size} values differ ({tolerance});"
                   f" worst at index {_fmt_shape(index)}")
        _fail(name, problem, _fmt_value(e[index]),
              f"{_fmt_value(a[index])} (abs diff {diff[index]:.3g})", hint)


def check_finite(x, name="output", hint=None):
    """Check that `x` (tensor, array, number or list) holds no NaN or inf.

    >>> check_finite(my_sigmoid(torch.tensor([-1000.0, 1000.0])), name="sigmoid")
    """
    a = _student_array(x, name, hint)
    if (~_isfinite(a)).any():
        _report_nonfinite(a, ~_isfinite(a), name, hint)


def check_accuracy(accuracy, threshold, name="test accuracy", hint=None):
    """Check that `accuracy` >= `threshold`.

    Each may be a fraction (0..1) or a percentage (above 1, up to 100); a value
    of at most 1 is read as a fraction. `accuracy` may be a Python or NumPy
    number or a one-element tensor; anything else (e.g. predictions) fails.

    >>> check_accuracy(0.931, 92, name="MLP test accuracy")  # 93.1 % >= 92 %
    """
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, _np_number))
            or not 0 <= threshold <= 100):
        raise ValueError(f"check_accuracy: threshold must be in 0..1 or 0..100, got {threshold!r}")
    value = None
    if isinstance(accuracy, (_Tensor, _ndarray)):
        arr = _to_numpy(accuracy)
        value = float(arr.reshape(-1)[0]) if arr is not None and arr.size == 1 else None
    elif isinstance(accuracy, (int, float, _np_number)) and not isinstance(accuracy, (bool, _np_bool)):
        value = float(accuracy)
    if value is None:
        _fail(name, "not a number", "one number: a fraction (0..1) or a percentage (0..100)",
              _describe(accuracy), hint, _NO_RETURN_HINT if accuracy is None else
              "compute the accuracy, e.g. (predictions == labels).float().mean().item()")
    if not 0 <= value <= 100:  # also catches NaN
        _fail(name, "not a valid accuracy", "a fraction (0..1) or a percentage (0..100)",
              _fmt_value(value), hint,
              "did you forget to divide by the number of samples?" if value > 100 else None)
    # Compare fractions: 92 / 100 == 0.92 exactly, whereas 0.92 * 100 != 92.
    got, wanted = (v if v <= 1 else v / 100 for v in (value, threshold))
    if got < wanted:
        digits = 1  # as many digits as it takes for the two numbers not to look equal
        while f"{got * 100:.{digits}f}" == f"{wanted * 100:.{digits}f}" and digits < 6:
            digits += 1
        given = f"given as the fraction {value:g}" if value <= 1 else "given as a percentage"
        _fail(name, "too low", f">= {wanted * 100:.{digits}f} %",
              f"{got * 100:.{digits}f} % ({given})", hint)


def check_equal(actual, expected, name="output", hint=None):
    """Check that `actual` equals `expected` exactly.

    Tensors and arrays get the checks of check_close (type, shape, then any
    dtype difference) and the first differing element is shown; NaN equals NaN.
    Other values (ints, strings, tuples, ...) are compared with ==.

    >>> check_equal(predictions, torch.tensor([0, 1, 1, 0]), name="XOR predictions")
    """
    if not isinstance(actual, (_Tensor, _ndarray)) and not isinstance(expected, (_Tensor, _ndarray)):
        if not actual == expected:
            _fail(name, "wrong value", repr(expected), repr(actual), hint,
                  _NO_RETURN_HINT if actual is None else None)
        return
    a, e = _check_alike(actual, expected, name, hint, floating_only=False)
    bad = (a != e) & ~(_isnan(a) & _isnan(e))
    if bad.any():
        index = _first_index(bad)
        problem = ("wrong value" if a.ndim == 0 else
                   f"{int(bad.sum())} of {a.size} values differ; first at index {_fmt_shape(index)}")
        _fail(name, problem, _fmt_value(e[index]), _fmt_value(a[index]), hint)


def trace_layers(model, x) -> list:
    """Run ``model(x)`` once and list what every leaf module did, in the order forward called them:
    ``[(name, module, output shape), ...]``, e.g. ``("features.0", Conv2d(1, 6, ...), (8, 6, 28, 28))``.

    Only modules are seen (``nn.ReLU()``, ``nn.MaxPool2d(2)``, ...): work done with functions such
    as ``F.relu`` inside ``forward`` does not appear.  The model runs without gradients and keeps
    its train/eval mode.
    """
    names = {module: name for name, module in model.named_modules()}
    calls = []

    def record(module, inputs, output):
        calls.append((names.get(module, type(module).__name__), module, tuple(output.shape)))

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return calls

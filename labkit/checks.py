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

Besides values, a test can check behaviour: check_raises (a call raises the
right exception), check_in_range (a number lies between bounds) and
check_no_calls (a student's function does not use the library function it
is meant to re-implement).
"""

import ast
import builtins
import dis
import inspect
import math
import re
import textwrap
import types

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

__all__ = ["CheckError", "check_shape", "check_dtype", "check_close", "check_finite", "check_accuracy",
           "check_equal", "check_in_range", "check_raises", "check_no_calls", "trace_layers"]


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
_parse, _walk, _unparse, _Attribute = ast.parse, ast.walk, ast.unparse, ast.Attribute
_getsource, _dedent, _re_search, _re_error = inspect.getsource, textwrap.dedent, re.search, re.error
_CodeType, _ModuleType = types.CodeType, types.ModuleType
_BUILTINS, _MISSING = dict(vars(builtins)), object()
_instructions, _ATTRIBUTE_LOADS = dis.get_instructions, frozenset({"LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR"})

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


def _fmt_bound(value):
    return _fmt_value(value) if isinstance(value, (int, float, _np_number)) else repr(value)


def _fmt_range(low, high, exclusive):
    if low is not None and high is not None:
        return f"{'strictly ' if exclusive else ''}between {_fmt_bound(low)} and {_fmt_bound(high)}"
    if low is not None:
        return f"{'>' if exclusive else '>='} {_fmt_bound(low)}"
    return f"{'<' if exclusive else '<='} {_fmt_bound(high)}"


def check_in_range(x, low=None, high=None, name="value", hint=None, exclusive=False):
    """Check that `x` (a number, tensor, array or list) lies in low <= x <= high, every element of it.

    Either bound may be None (no bound on that side); with ``exclusive=True`` both comparisons
    are strict (low < x < high). NaN is in no range. The message shows the first element out of range.

    >>> check_in_range(ratio, high=1e-3, exclusive=True, name="first / last layer gradient")
    """
    if low is None and high is None:
        raise ValueError("check_in_range: give low, high or both")
    a = _student_array(x, name, hint)
    with _errstate(invalid="ignore"):
        ok = ~_isnan(a)  # NaN is in no range, also without bounds that would reject it
        if low is not None:
            ok = ok & ((a > low) if exclusive else (a >= low))
        if high is not None:
            ok = ok & ((a < high) if exclusive else (a <= high))
    bad = ~ok
    if bad.any():
        index = _first_index(bad)
        problem = ("out of range" if a.ndim == 0 else
                   f"{int(bad.sum())} of {a.size} values out of range; first at index {_fmt_shape(index)}")
        _fail(name, problem, _fmt_range(low, high, exclusive), _fmt_value(a[index]), hint)


def _exception_names(exception) -> str:
    classes = exception if isinstance(exception, tuple) else (exception,)
    if not classes or not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
        raise TypeError(f"check_raises: exception must be an exception class or a tuple of them, got {exception!r}")
    return " or ".join(c.__name__ for c in classes)


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _returned(x) -> str:
    """What a call returned, on one line: "tuple ('sgd', 0.1)", "SGD (Parameter Group 0 ...", "None"."""
    if x is None or isinstance(x, (_Tensor, _ndarray)):
        return _describe(x)
    text = _shorten(repr(x), 60)
    return text if text.startswith(type(x).__name__) else f"{type(x).__name__} {text}"


def _raised(error) -> str:
    message = _shorten(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def check_raises(fn, exception, *args, name=None, hint=None, match=None, **kwargs):
    """Check that ``fn(*args, **kwargs)`` raises `exception` (a class, or a tuple of classes).

    With `match`, the error message must also contain it (a substring) or match it (a regular
    expression, found anywhere in the message). Fails when the call returns normally, raises
    another exception, or raises one whose message does not match. `name` defaults to the
    function's name; keyword arguments called name, hint or match go through a lambda.

    >>> check_raises(LeNet5, ValueError, activation="swish", match="choose one of")
    """
    expected = _exception_names(exception)
    name = name or f"{getattr(fn, '__name__', 'the call')}(...)"
    try:
        result = fn(*args, **kwargs)
    except exception as error:
        caught, other = error, None
    except Exception as error:  # noqa: BLE001 - any other exception is the student's to see
        caught, other = None, error
    else:
        caught = other = None
        _fail(name, "no exception", f"raises {expected}", f"no exception; it returned {_returned(result)}", hint)
    if other is not None:
        _fail(name, "wrong exception", f"raises {expected}", f"raised {_raised(other)}", hint)
    if match is not None:
        message = str(caught)
        try:
            found = match in message or _re_search(match, message) is not None
        except _re_error:  # not a valid regular expression: a plain substring only
            found = False
        if not found:
            _fail(name, "wrong error message", f"{expected} with a message matching {match!r}",
                  f"raised {_raised(caught)}", hint)


def _plain_name(name) -> str:
    """How check_no_calls compares names: "log_softmax", "LogSoftmax" and "_log_softmax_" are the same."""
    return str(name).lower().replace("_", "")


def _object_name(obj) -> str:
    if isinstance(obj, _ModuleType):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None) or getattr(
        obj, "__name__", None)
    if qualname is None:
        return repr(obj)
    if qualname.startswith("TensorBase."):  # a Tensor method: z.softmax
        return "Tensor." + qualname.split(".", 1)[1]
    if module and module.startswith("torch") and "." in qualname:  # torch's builtins: _VariableFunctionsClass.exp
        qualname = qualname.rsplit(".", 1)[1]
    if module and module.startswith("torch._C"):
        module = "torch"
    if module and module.startswith("torch.nn.modules"):  # nn.Softmax, not torch.nn.modules.activation.Softmax
        module = "torch.nn"
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


class _TorchCalls(TorchFunctionMode):
    """Records every torch function (and Tensor method) called while it is active."""

    def __init__(self):
        super().__init__()
        self.called = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.called.append(func)
        return func(*args, **(kwargs or {}))


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, _CodeType):  # lambdas, comprehensions and functions defined inside
            yield from _code_objects(const)


def _banned_in_source(fn, names) -> list:
    """The attributes of a banned name that fn's code reads: from its source, or, when that is not
    available (a lambda inside a longer line, code made by exec), from its bytecode."""
    try:
        tree = _parse(_dedent(_getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        code = getattr(fn, "__code__", None)
        return [] if code is None else [
            f".{op.argval} (in the code)" for inner in _code_objects(code) for op in _instructions(inner)
            if op.opname in _ATTRIBUTE_LOADS and _plain_name(op.argval) in names]
    return [f"{_unparse(node)} (in the source)" for node in _walk(tree)
            if isinstance(node, _Attribute) and _plain_name(node.attr) in names]


def _banned_referenced(fn, objects) -> list:
    """The names in fn's code (and the code nested in it) that are bound to a banned object."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    scope = dict(getattr(fn, "__globals__", {}))
    for var, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or (), strict=False):
        try:
            scope[var] = cell.cell_contents
        except ValueError:  # a cell not filled yet
            pass
    found = []
    for inner in _code_objects(code):
        for var in (*inner.co_names, *inner.co_freevars):
            value = scope.get(var, _MISSING)
            if value is _MISSING:
                value = _BUILTINS.get(var, _MISSING)
            if any(value is obj for obj in objects):
                found.append(f"{var} (= {_object_name(value)})")
    return found


def _banned_called(fn, args, names, objects) -> list:
    with _TorchCalls() as calls:
        fn(*args)
    found = []
    for func in calls.called:
        plain = _plain_name(getattr(func, "__name__", ""))
        if (plain in names or plain.removeprefix("special") in names  # torch.special.expit is "special_expit"
                or any(func is obj for obj in objects)):
            found.append(f"{_object_name(func)} (called)")
    return found


def check_no_calls(fn, banned, name=None, hint=None, args=None):
    """Check that the student's function `fn` uses none of the functions in `banned`.

    `banned` holds names (strings) and objects (functions, classes, modules). `fn` fails when
    - its source has an attribute of a banned name (``torch.softmax``, ``F.softmax``, ``z.softmax``);
      names are compared ignoring case and underscores, so "log_softmax" also bans ``nn.LogSoftmax``;
    - a name in its code (or in the code defined inside it) refers, through its globals or its
      closure, to a banned object: ``from torch import softmax as sm`` then ``sm(z)``;
    - with `args` (a tuple): ``fn(*args)`` is run, and a torch function or Tensor method of a
      banned name or object is called while it runs, also from helper functions it calls.
    The message lists everything found. `name` defaults to the function's name.

    >>> check_no_calls(softmax, ["softmax", "log_softmax", torch.softmax], args=(torch.randn(4, 10),))
    """
    banned = list(banned)
    if not banned:
        raise ValueError("check_no_calls: banned is empty; list the names or functions that fn must not use")
    names = {_plain_name(b) for b in banned if isinstance(b, str)}
    objects = [b for b in banned if not isinstance(b, str)]
    fn_name = getattr(fn, "__name__", None) or repr(fn)
    name = name or fn_name
    func = getattr(fn, "__func__", fn)  # a bound method: its function
    found = _banned_in_source(func, names) + _banned_referenced(func, objects)
    if args is not None:
        found += _banned_called(fn, tuple(args), names, objects)
    if found:
        listing = list(dict.fromkeys([b if isinstance(b, str) else _object_name(b) for b in banned]))
        shown = ", ".join(listing[:8]) + (f", ... ({len(listing)} in all)" if len(listing) > 8 else "")
        _fail(name, "uses a function it must not call", f"none of {shown}",
              ", ".join(dict.fromkeys(found)), hint)


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

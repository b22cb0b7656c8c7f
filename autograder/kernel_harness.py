"""Runs inside the sandboxed kernel, before any student cell: how graded test cells are executed.

The grader sends this file's text to a fresh kernel first (silently), then every
graded test cell is sent as ``__labkit_grader__(SOURCE, GRADE_ID, NONCE)``.  For
each test cell the harness:

1. puts back what student cells changed since the kernel started: attributes of
   ``builtins``, ``torch``, ``torch.Tensor``, ``torch.nn``, ``torch.nn.functional``,
   ``numpy``, ``math``, every ``labkit`` module and class (and the code of their
   functions), the ``sys.modules`` entries of those modules, trace/profile hooks,
   ``sys.stdout``/``stderr``/``displayhook`` and IPython's
   exception and code transformers;
2. runs the test's code itself, with a pristine copy of the builtins in which
   ``from labkit.checks import ...`` gives a private copy of ``labkit.checks``
   loaded here, before any student code ran;
3. reports the outcome to the grader as a display output carrying the cell's
   one-time NONCE; the grader counts a test as passed only if that report says
   so and the cell shows no error.  A test whose code was blocked, skipped or
   whose error display was suppressed therefore fails, it never passes.

What this does not stop: code written to attack the grader from inside the same
Python process (e.g. a pre-run hook that reads the NONCE from the incoming
cell and forges a report).  See the README's sandbox section.
"""


def _labkit_grader_install(namespace):  # noqa: C901 - one closure keeps the pristine objects out of reach of names
    import ast
    import builtins
    import importlib.util
    import linecache
    import math
    import os
    import sys
    import threading

    import numpy
    import torch
    import torch.nn
    import torch.nn.functional
    import torch.optim
    from IPython import get_ipython

    import labkit
    import labkit.checks

    for name in labkit.__all__:  # labkit imports its names lazily: load them all now, into the snapshot below
        getattr(labkit, name)

    # Libraries patch themselves lazily (building the first optimizer wraps torch.manual_seed for
    # torch._dynamo): do it now, so that the snapshot below already holds the patched objects.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)

    mime = "application/vnd.labkit.grader+json"
    ip = get_ipython()
    missing = object()
    publish = ip.display_pub.publish
    displayhook = ip.displayhook
    _compile, _exec, _eval, _parse = compile, exec, eval, ast.parse
    _isinstance, _getattr, _setattr, _len, _str, _type = isinstance, getattr, setattr, len, str, type

    # A private copy of the checks, loaded before any student code: whatever a student cell does
    # to the labkit.checks module, `from labkit.checks import ...` in a test cell gets this one.
    spec = importlib.util.spec_from_file_location("_labkit_grader_checks", labkit.checks.__file__)
    checks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checks)
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name == "labkit.checks" and fromlist:
            return checks
        return real_import(name, globals, locals, fromlist, level)

    test_builtins = dict(vars(builtins))
    test_builtins["__import__"] = guarded_import

    # What is put back before every test.
    watched = {"builtins": builtins, "math": math, "numpy": numpy, "torch": torch, "torch.nn": torch.nn,
               "torch.nn.functional": torch.nn.functional, "torch.Tensor": torch.Tensor,
               "torch.nn.Module": torch.nn.Module}
    for name, module in list(sys.modules.items()):
        if name == "labkit" or name.startswith("labkit."):
            watched[name] = module
            for attr, value in list(vars(module).items()):
                if _isinstance(value, type) and _getattr(value, "__module__", "").startswith("labkit"):
                    watched[f"{name}.{attr}"] = value
    # IPython's last results, and the input() that ipykernel installs for each execution
    ignored = {("builtins", "_"), ("builtins", "__"), ("builtins", "___"), ("builtins", "input")}
    ignored_attrs = {"__slotnames__"}  # copyreg's cache on classes whose instances were copied or pickled
    library = tuple({sys.prefix, sys.base_prefix, os.path.dirname(labkit.__file__)})

    def student_made(value):
        """Whether a changed attribute's new value comes from notebook code (it is reported) rather than from
        a library patching itself (put back silently)."""
        if value is missing:
            return True
        func = _getattr(value, "__func__", value)
        code = _getattr(func, "__code__", None)
        if code is not None:
            return not code.co_filename.startswith(library)
        return _getattr(value, "__module__", None) in (None, "__main__")

    saved = {label: (obj, dict(vars(obj))) for label, obj in watched.items()}
    functions = []
    for label, (_obj, attrs) in saved.items():
        if label.startswith("labkit"):
            for attr, value in attrs.items():
                func = _getattr(value, "__func__", value)
                if _type(func).__name__ == "function":
                    functions.append((f"{label}.{attr}", func, func.__code__, func.__defaults__, func.__kwdefaults__))
    modules = {name: sys.modules[name] for name in watched if name in sys.modules}
    sys_attrs = {name: _getattr(sys, name) for name in ("stdout", "stderr", "displayhook")}
    ip_lists = {name: list(_getattr(ip, name)) for name in ("ast_transformers", "input_transformers_cleanup",
                                                             "input_transformers_post") if hasattr(ip, name)}
    ip_own = set(vars(ip))

    def restore():
        changed = []
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)
        threading.setprofile(None)
        for label, (obj, attrs) in saved.items():
            current = vars(obj)
            if _isinstance(obj, type):  # a new class attribute may hide an inherited one (Tensor.__eq__)
                for attr in [a for a in current if a not in attrs and a not in ignored_attrs]:
                    value = current[attr]
                    try:
                        delattr(obj, attr)
                    except (AttributeError, TypeError):
                        continue
                    if student_made(value):
                        changed.append(f"{label}.{attr}")
            for attr, value in attrs.items():
                now = current.get(attr, missing)
                if (label, attr) in ignored or attr in ignored_attrs or now is value:
                    continue
                try:
                    if obj is builtins:
                        current[attr] = value
                    else:
                        _setattr(obj, attr, value)
                except (AttributeError, TypeError):
                    continue
                if student_made(now):
                    changed.append(f"{label}.{attr}")
        for label, func, code, defaults, kwdefaults in functions:
            if func.__code__ is not code or func.__defaults__ is not defaults or func.__kwdefaults__ is not kwdefaults:
                func.__code__, func.__defaults__, func.__kwdefaults__ = code, defaults, kwdefaults
                changed.append(f"the code of {label}")
        for name, module in modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changed.append(f"sys.modules[{name!r}]")
        for name, value in sys_attrs.items():
            if _getattr(sys, name) is not value:
                _setattr(sys, name, value)
                changed.append(f"sys.{name}")
        for name, items in ip_lists.items():
            current = _getattr(ip, name)
            if list(current) != items:
                current[:] = items
                changed.append(f"IPython {name}")
        if ip.custom_exceptions:
            ip.set_custom_exc((), None)
            changed.append("IPython custom exception handler")
        for name in set(vars(ip)) - ip_own:
            if _type(_getattr(_type(ip), name, None)).__name__ == "function":  # hides a method, e.g. showtraceback
                delattr(ip, name)
                changed.append(f"IPython {name}")
        return changed

    def report(nonce, passed, restored, **extra):
        publish(data={mime: {"nonce": nonce, "passed": passed, "restored": restored, **extra}}, metadata={})

    def run_test(source, grade_id, nonce):
        restored = restore()
        filename = f"<test {grade_id}>"
        linecache.cache[filename] = (_len(source), None, source.splitlines(True), filename)
        user_ns = ip.user_ns
        before = user_ns.get("__builtins__", missing)
        user_ns["__builtins__"] = test_builtins
        value = None
        try:
            tree = _parse(source, filename)
            last = tree.body.pop() if tree.body and _isinstance(tree.body[-1], ast.Expr) else None
            _exec(_compile(tree, filename, "exec", dont_inherit=True), user_ns)
            if last is not None:
                value = _eval(_compile(ast.Expression(last.value), filename, "eval", dont_inherit=True), user_ns)
        except BaseException as exc:
            line, tb = None, exc.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == filename:
                    line = tb.tb_lineno
                tb = tb.tb_next
            report(nonce, False, restored, ename=_type(exc).__name__, evalue=_str(exc)[:4000], line=line)
            raise
        finally:
            linecache.cache.pop(filename, None)  # the traceback is rendered: later cells may not read the source
            if before is missing:
                user_ns.pop("__builtins__", None)
            else:
                user_ns["__builtins__"] = before
        report(nonce, True, restored)
        if value is not None:
            displayhook(value)

    namespace["__labkit_grader__"] = run_test


_labkit_grader_install(globals())
del _labkit_grader_install

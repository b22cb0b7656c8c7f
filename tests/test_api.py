"""labkit's public API: light to import, complete for the labs, and the same everywhere it is read.

`import labkit` must not load torch, matplotlib, ipywidgets, IPython or tqdm (each public name
is imported from its module on first use), and `python -m labkit.data` must start without a
warning.  Every `lk.<name>` and `from labkit... import <name>` in a lab is a name of
`labkit.__all__`, and every name of `__all__` resolves.
"""
import ast
import subprocess
import sys

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

import labkit
from autograder import ROOT, labs

HEAVY = ("torch", "numpy", "matplotlib", "ipywidgets", "IPython", "tqdm")


def loaded_after(code: str) -> set:
    """The heavy top-level packages a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(ast.literal_eval(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("code, allowed", [
    ("import labkit", set()),
    ("import labkit as lk; lk.quick_mode(); lk.by_mode(quick=1, full=2)", set()),
    ("from labkit.submission import check_lab, watch_tests", set()),
    ("from labkit.data import data_dir", {"torch", "numpy", "tqdm"}),  # torch imports tqdm itself
    ("import labkit as lk; lk.fit", {"torch", "numpy", "tqdm"}),
    ("import labkit as lk; lk.plot_history", {"torch", "numpy", "tqdm", "matplotlib"}),
])
def test_import_labkit_loads_only_what_is_used(code, allowed):
    assert loaded_after(code) <= allowed


def test_python_m_labkit_data_starts_without_a_warning():
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "labkit.data", "--help"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "Warning" not in done.stderr, done.stderr


def test_every_public_name_resolves_and_nothing_else_is_offered():
    for name in labkit.__all__:
        assert getattr(labkit, name) is not None, name
    assert set(labkit.__all__) <= set(dir(labkit))
    with pytest.raises(AttributeError, match="labkit.__all__"):
        labkit.not_a_name  # noqa: B018


def names_used(source: str) -> set:
    """Every ``lk.<name>`` and ``from labkit[.module] import <name>`` in a cell."""
    tree = ast.parse(TransformerManager().transform_cell(source))
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "lk"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "labkit":
            used |= {alias.name for alias in node.names}
        if isinstance(node, ast.Import):
            used |= {alias.name.split(".", 1)[1] for alias in node.names if alias.name.startswith("labkit.")}
    return used


@pytest.mark.parametrize("lab", labs())
def test_the_labs_use_only_the_public_api(lab):
    nb = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    used = set().union(*(names_used(c.source) for c in nb.cells if c.cell_type == "code"))
    outside = sorted(used - set(labkit.__all__))
    assert not outside, f"{lab} uses labkit names that are not in labkit.__all__: {outside}"


def test_the_grader_finds_the_data_where_labkit_does(monkeypatch, tmp_path):
    from autograder.isolation import data_dir as grader_data_dir
    from labkit.data import data_dir

    monkeypatch.delenv("LABKIT_DATA", raising=False)
    assert grader_data_dir() == data_dir()
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "elsewhere"))
    assert grader_data_dir() == data_dir() == tmp_path / "elsewhere"

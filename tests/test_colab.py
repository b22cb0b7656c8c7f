"""A Colab-like environment (ipywidgets 7.7.1, matplotlib 3.10, IPython 7.34, no ipympl, no
Jupyter extensions; see tests/colab/requirements.txt), built by `make test` as .venv-colab.

The first cell of a lab is run there with `google.colab` importable (a stand-in module), as
on Colab: it must install labkit and upgrade nothing.  Then every solution notebook runs
there in quick mode, and the widgets' callbacks are driven under ipywidgets 7.7.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from nbclient import NotebookClient

from autograder import ROOT, labs, solution_notebook

COLAB = ROOT / ".venv-colab" / "bin" / "python"


def run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def freeze() -> dict:
    lines = run([COLAB, "-m", "pip", "freeze"]).stdout.splitlines()
    return dict(line.split("==", 1) if "==" in line else (line.split(" @ ")[0], line) for line in lines)


def first_cell(lab: str) -> str:
    return next(cell.source for cell in solution_notebook(lab).cells if cell.cell_type == "code")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Run a lab's first cell the way Colab would: labkit absent, google.colab importable."""
    assert COLAB.exists(), "the Colab-like environment is missing: `make test` builds .venv-colab"
    run([COLAB, "-m", "pip", "uninstall", "-y", "-q", "labkit"])
    before = freeze()
    assert "labkit" not in before
    fake = tmp_path_factory.mktemp("fake-colab")
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s module."""\n')
    env = dict(os.environ, PYTHONPATH=str(fake), LABKIT_PIP_SOURCE=f"labkit @ {ROOT.as_uri()}")
    cell = first_cell(labs()[0]) + "\nprint('labkit from', lk.__file__)"
    done = run([COLAB, "-c", cell], env=env, cwd=fake)
    return before, freeze(), done.stdout


def test_every_lab_starts_with_the_same_setup_cell():
    cells = {lab: first_cell(lab) for lab in labs()}
    assert len(set(cells.values())) == 1, cells


def test_the_setup_cell_installs_labkit_and_upgrades_nothing(installed):
    before, after, output = installed
    assert "labkit from" in output and ".venv-colab" in output
    assert set(after) - set(before) == {"labkit"}
    changed = {name: (before[name], after[name]) for name in before if after.get(name) != before[name]}
    assert not changed, f"installing labkit changed Colab's packages: {changed}"
    assert (after["ipywidgets"], after["matplotlib"]) == ("7.7.1", "3.10.0")
    assert after["torch"].startswith("2.13.0")


def test_the_setup_cell_does_nothing_outside_colab():
    done = run([sys.executable, "-c", first_cell(labs()[0]) + "\nprint(lk.__name__)"],
               env={k: v for k, v in os.environ.items() if k != "LABKIT_PIP_SOURCE"})
    assert done.stdout.strip() == "labkit"


@pytest.fixture(scope="module")
def colab_kernel(installed, tmp_path_factory):
    """A kernelspec that starts the Colab-like interpreter; returns the env for nbclient."""
    home = tmp_path_factory.mktemp("jupyter")
    spec = home / "kernels" / "colab-like"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(COLAB), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))
    return str(home)


@pytest.mark.parametrize("lab", labs())
def test_solution_runs_in_the_colab_like_environment(colab_kernel, lab, monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTER_PATH", colab_kernel)
    monkeypatch.setenv("LABKIT_QUICK", "1")
    nb = solution_notebook(lab)
    NotebookClient(nb, timeout=600, kernel_name="colab-like", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    versions = "import ipywidgets, matplotlib; print(ipywidgets.__version__, matplotlib.__version__)"
    assert run([COLAB, "-c", versions]).stdout.split() == ["7.7.1", "3.10.0"]


def test_widget_callbacks_under_ipywidgets_7(installed):
    script = textwrap.dedent("""
        import ipywidgets, labkit as lk
        assert ipywidgets.__version__ == "7.7.1", ipywidgets.__version__
        demo = lk.gradient_descent_demo()
        before = demo.figure
        demo.lr.value = 0.25                      # past 2 / lambda_max = 0.2
        assert demo.figure is not before and "diverged" in demo.status.value, demo.status.value
        demo.momentum.value = 0.5                 # threshold moves to 0.3: no longer diverged
        assert "diverged" not in demo.status.value, demo.status.value
        explorer = lk.learning_rate_explorer("xor", lrs=[0.1, 1.0, 3.0], epochs=100)
        explorer.lr.value = 3.0
        final = explorer.sweep()
        assert sorted(final) == [0.1, 1.0, 3.0] and "best" in explorer.figure.axes[0].get_title()
        print("ok")
    """)
    assert run([COLAB, "-c", script], env=dict(os.environ, MPLBACKEND="Agg")).stdout.strip().endswith("ok")

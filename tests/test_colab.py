"""A Colab-like environment (ipywidgets 7.7.1, matplotlib 3.10, IPython 7.34, no ipympl, no
Jupyter extensions; see tests/colab/requirements.txt), built by `make test` as .venv-colab.

The student edition is published (tests/editions.py) into a local git repository, tagged,
and a lab's setup cell from that edition is run there with `google.colab` importable (a
stand-in module), as on Colab: it must install labkit-course from that repository at that
tag (never from this checkout) and upgrade nothing; with a tag that does not exist it must
show pip's own output and say what to check.  Then every solution notebook runs there in
quick mode, and the widgets' callbacks are driven under ipywidgets 7.7.
"""
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest
from editions import kernelspec, publish_edition, text_output
from nbclient import NotebookClient
from test_in_kernel import LIVE, check_live_curves, iopub

from autograder import ROOT, labs, solution_notebook
from autograder.stamp import graded_tests

COLAB = ROOT / ".venv-colab" / "bin" / "python"
TAG = "colab-test"


def run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def freeze() -> dict:
    lines = run([COLAB, "-m", "pip", "freeze"]).stdout.splitlines()
    return dict(line.split("==", 1) if "==" in line else (line.split(" @ ")[0], line) for line in lines)


def first_cell(nb) -> str:
    return next(cell.source for cell in nb.cells if cell.cell_type == "code")


def edition_repository(root, ref: str):
    """The student edition published into a git repository under ``root`` and tagged TAG; the setup
    cell of its first lab, stamped to install from that repository at ``ref``."""
    repo = root / "labkit-student"
    publish_edition(repo, repository=repo.as_uri(), ref=ref, pip=f"labkit-course @ git+{repo.as_uri()}@{ref}")
    git = ["git", "-C", str(repo), "-c", "user.name=CI", "-c", "user.email=ci@example.invalid"]
    if not (repo / ".git").exists():
        run([*git, "init", "-q", "-b", "main"])
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "--allow-empty", "-m", f"edition for {ref}"])
    run([*git, "tag", "-f", TAG])
    lab = labs()[0]
    commit = run([*git, "rev-parse", TAG]).stdout.strip()
    return first_cell(nbformat.read(repo / "notebooks" / lab / f"{lab}.ipynb", as_version=4)), commit


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Run a lab's setup cell the way Colab would: labkit absent, google.colab importable.  First with an
    edition pinned to a tag that was never pushed (pip fails), then with the right one."""
    assert COLAB.exists(), "the Colab-like environment is missing: `make test` builds .venv-colab"
    run([COLAB, "-m", "pip", "uninstall", "-y", "-q", "labkit-course", "labkit"])
    before = freeze()
    assert "labkit-course" not in before
    root = tmp_path_factory.mktemp("colab")
    fake = root / "fake-colab"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s module."""\n')
    env = dict(os.environ, PYTHONPATH=str(fake))
    failing = subprocess.run([COLAB, "-c", edition_repository(root, "never-pushed")[0]], env=env, cwd=fake,
                             capture_output=True, text=True, check=False)
    cell, commit = edition_repository(root, TAG)
    done = run([COLAB, "-c", cell + "\nprint('labkit from', lk.__file__)"], env=env, cwd=fake)
    return before, freeze(), done.stdout, failing, commit


def test_a_failed_install_shows_pips_output_and_what_to_check(installed):
    failing = installed[3]
    assert failing.returncode != 0
    assert "Did not find branch or tag 'never-pushed'" in failing.stdout, failing.stdout  # pip's own words
    last = failing.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: pip could not install labkit-course @ git+file://"), last
    assert "check that the runtime is connected" in last and "labkit-student" in last


def test_every_lab_starts_with_the_same_setup_cell():
    cells = {lab: first_cell(solution_notebook(lab)) for lab in labs()}
    assert len(set(cells.values())) == 1, cells


def test_the_setup_cell_installs_the_edition_and_upgrades_nothing(installed):
    before, after, output, _, commit = installed
    assert "installed labkit-course @ git+file://" in output and f"@{TAG}" in output
    assert "labkit from" in output and ".venv-colab" in output and "site-packages" in output  # not this checkout
    assert set(after) - set(before) == {"labkit-course"} and after["labkit-course"].endswith(f"@{commit}")
    changed = {name: (before[name], after[name]) for name in before if after.get(name) != before[name]}
    assert not changed, f"installing labkit changed Colab's packages: {changed}"
    assert (after["ipywidgets"], after["matplotlib"]) == ("7.7.1", "3.10.0")
    assert after["torch"].startswith("2.13.0")


def test_the_setup_cell_does_nothing_outside_colab():
    done = run([sys.executable, "-c", first_cell(solution_notebook(labs()[0])) + "\nprint(lk.__name__)"])
    assert done.stdout.strip() == "labkit"


@pytest.fixture(scope="module")
def colab_kernel(installed, tmp_path_factory):
    """A kernelspec that starts the Colab-like interpreter; returns the folder for JUPYTER_PATH."""
    return kernelspec(tmp_path_factory.mktemp("jupyter"), "colab-like", COLAB)


@pytest.mark.parametrize("lab", labs())
def test_solution_runs_in_the_colab_like_environment(colab_kernel, lab, monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTER_PATH", colab_kernel)
    monkeypatch.setenv("LABKIT_QUICK", "1")
    nb = solution_notebook(lab)
    NotebookClient(nb, timeout=600, kernel_name="colab-like", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    tests = len(graded_tests(nb))  # the hand-in check sees every test pass under IPython 7.34 too
    assert f"{tests} of {tests} graded tests pass in this kernel" in text_output(nb.cells[-1])
    versions = "import ipywidgets, matplotlib; print(ipywidgets.__version__, matplotlib.__version__)"
    assert run([COLAB, "-c", versions]).stdout.split() == ["7.7.1", "3.10.0"]


def test_live_curves_under_ipython_7_and_ipywidgets_7(colab_kernel, monkeypatch):
    """fit(live=True) in the Colab-like kernel: one image, shown after epoch 1, replaced after each later epoch."""
    monkeypatch.setenv("JUPYTER_PATH", colab_kernel)
    check_live_curves(iopub(LIVE.replace("{progress}", "True"), kernel_name="colab-like"))


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

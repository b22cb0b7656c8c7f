"""autograder.lab_results: how a lab's recorded results are regenerated, on a tiny notebook.

The real regeneration (Lab 5, full mode) takes hours; here a three-cell notebook makes two
``lk.Ablation``s and the same command records their runs, from a cell it adds itself: the lab
carries no instructor-only cell.
"""
import json
import subprocess
import sys

import nbformat

from autograder import ROOT, tool_env
from autograder.lab_results import save_runs_source

CELLS = [
    "import labkit as lk\nfrom torch import nn\ndata = lk.load_fashion_mnist(verbose=False)",
    "def tiny(hidden=4):\n"
    "    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))\n\n\n"
    "first = lk.Ablation(tiny, base={'epochs': 1, 'hidden': 4}, train=data.train.subset(200, seed=0),\n"
    "                    test=data.test.subset(100, seed=0), progress=False)\n"
    "first.sweep('hidden', [2, 4])\n"
    "same = first  # one Ablation under two names: its runs are recorded once",
    "second = lk.Ablation(tiny, base={'epochs': 1, 'hidden': 4, 'lr': 3e-3}, train=data.train.subset(200, seed=0),\n"
    "                     test=data.test.subset(100, seed=0), progress=False)\n"
    "second.run(hidden=8)",
]


def execute(tmp_path, cells):
    source, executed, out = tmp_path / "lab.ipynb", tmp_path / "executed.ipynb", tmp_path / "ref" / "lab.json"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, source)
    before = source.read_text()
    done = subprocess.run([sys.executable, "-m", "autograder.lab_results", "--execute", str(source), str(executed),
                           str(out)], cwd=ROOT, env={**tool_env(), "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert source.read_text() == before, "the lab's notebook itself must not change"
    return done, nbformat.read(executed, as_version=4), out


def test_the_runs_of_every_ablation_are_recorded_by_an_added_cell(tmp_path):
    done, executed, out = execute(tmp_path, CELLS)
    assert done.returncode == 0, done.stderr
    runs = json.loads(out.read_text())["runs"]
    assert [(r["config"]["hidden"], r["config"]["lr"]) for r in runs] == [(2, 1e-3), (4, 1e-3), (8, 3e-3)]
    assert len(executed.cells) == len(CELLS) + 1 and executed.cells[-1].source == save_runs_source(out)
    assert f"saved 3 runs to {out}" in executed.cells[-1].outputs[0]["text"]


def test_a_notebook_without_ablations_fails(tmp_path):
    done, executed, out = execute(tmp_path, ["x = 1"])
    assert done.returncode != 0 and "nothing to record" in done.stderr and not out.exists()

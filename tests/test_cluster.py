"""`grade --cluster`: the tiny lab graded on a real Dask scheduler and two real workers on 127.0.0.1.

The cluster must give exactly the grades of local `--workers 2` on the same submissions, and a
worker killed while it grades must cost nothing: Dask runs its task again on the other worker and
the instructor's command merges it once.
"""
import importlib.util
import linecache
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import require
from grading_corpus import LAB, corpus, dumps, make_zip, quiet, rows, student_notebook, tiny_course
from test_ablate import same_outcome

from autograder import ROOT
from autograder.collect import collect
from autograder.grade import grade, scores
from autograder.isolation import Limits
from labkit.ablate import _clients, load_runs, save_runs

require(importlib.util.find_spec("distributed") is not None,
        'grading on a cluster needs Dask, not installed here: pip install "dask[distributed]"')

LIMITS = Limits(cell_timeout=4, notebook_timeout=60, interrupt_grace=5, memory_mb=1536, tree_memory_mb=2560)
# good, broken, runaway (the cell's time limit), crashing (graded again, alone)
CHOSEN = ["control-full", "control-partial", "infinite-loop", "kernel-death"]
BIN = Path(sys.executable).parent


def _env(tmp: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1", TMPDIR=str(tmp))
    env["PYTHONPATH"] = env["PYTHONPATH"].rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`dask scheduler` and two `dask worker --nthreads 1 --no-nanny` processes; TMPDIR shows each task's folder."""
    from distributed import Client

    base = tmp_path_factory.mktemp("dask")
    # the workers' TMPDIR: each task's folder, and the sandbox's staging, which its uid must reach (not under
    # pytest's private tmp folder)
    tasks = Path(tempfile.mkdtemp(prefix="labkit-dask-test-"))
    tasks.chmod(0o755)
    env = _env(tasks)
    procs = []

    def start(*args, log):
        procs.append(subprocess.Popen([str(BIN / "dask"), *args], env=env, cwd=base, start_new_session=True,
                                      stdout=open(base / log, "w"), stderr=subprocess.STDOUT))
        return procs[-1]

    file = base / "scheduler.json"
    start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(file),
          log="scheduler.log")
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            assert procs[0].poll() is None, (base / "scheduler.log").read_text()
            time.sleep(0.2)
        client = Client(scheduler_file=str(file), timeout="30s")
        workers = {name: start("worker", client.scheduler.address, "--nworkers", "1", "--nthreads", "1",
                               "--no-nanny", "--name", name, log=f"{name}.log") for name in ("w1", "w2")}
        client.wait_for_workers(2, timeout=60)
        yield SimpleNamespace(address=client.scheduler.address, client=client, workers=workers, tasks=tasks,
                              base=base)
        client.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(tasks, ignore_errors=True)


def chosen_download(root: Path) -> Path:
    files = corpus(root, 9, str(root / "nobody.ipynb"), str(root / "gradebook.db"))
    return make_zip(root.parent / f"{root.name}-download.zip",
                    {name: data for name, data in files.items() if name.split("_07_tiny")[0] in CHOSEN})


def test_the_cluster_grades_exactly_as_local_workers(tmp_path, cluster, sandbox):
    local, remote = tiny_course(tmp_path / "local"), tiny_course(tmp_path / "remote")
    # the cluster's address from the course settings, [grading] cluster
    (remote.root / "course.toml").write_text((ROOT / "course.toml").read_text() +
                                             f'\n[grading]\ncluster = "{cluster.address}"\n')
    remote = type(remote)(remote.root)
    assert remote.settings.cluster == cluster.address
    download = chosen_download(tmp_path / "local")
    for course in (local, remote):
        collect(LAB, download, course, say=quiet)
    grade(LAB, local, workers=2, limits=LIMITS, sandbox="full", say=quiet)
    said = []
    records = grade(LAB, remote, limits=LIMITS, sandbox="full", say=lambda line: (said.append(line), print(line)))

    assert remote.grades_csv(LAB).read_text() == local.grades_csv(LAB).read_text()
    assert scores(remote, LAB) == scores(local, LAB)
    got = rows(remote.grades_csv(LAB))
    assert set(got) == set(CHOSEN)
    assert (got["control-full"]["status"], got["control-full"]["score"]) == ("graded", "5")
    assert got["infinite-loop"]["status"] == "timeout" and got["kernel-death"]["status"] == "crashed"
    assert "graded a second time, alone" in got["kernel-death"]["reason"]
    assert {r["dask_worker"] for r in records.values()} <= {"w1", "w2"}, "graded on the Dask workers"
    dashboard = [i for i, line in enumerate(said) if line.startswith("Dask dashboard: http")]
    first = next(i for i, line in enumerate(said) if re.match(r"\[1/\d+\]", line))
    assert dashboard and dashboard[0] < first, said
    for student in CHOSEN:  # the graded notebook came back as bytes and was filed as on one machine
        assert (remote.autograded(student, LAB) / f"{LAB}.ipynb").exists() == \
            (local.autograded(student, LAB) / f"{LAB}.ipynb").exists(), student
    assert not list(cluster.tasks.glob("labkit-task-*")), "each task removes its folder on the worker"
    assert grade(LAB, remote, limits=LIMITS, sandbox="full", say=quiet) == {}, "a rerun resumes: nothing left"


def test_an_unreachable_scheduler_says_where_and_what_to_check():
    from autograder.cluster import connect

    with pytest.raises(SystemExit) as failure:
        connect("tcp://127.0.0.1:9", timeout="2s")
    assert "tcp://127.0.0.1:9" in str(failure.value) and "dask scheduler" in str(failure.value)


def test_without_dask_cluster_says_what_to_install_and_local_grading_never_imports_it():
    blocked = ("import sys; sys.modules['distributed'] = None; from autograder.cluster import connect; "
               "connect('tcp://127.0.0.1:9')")
    run = subprocess.run([sys.executable, "-c", blocked], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and 'pip install "dask[distributed]"' in run.stderr, run.stderr
    local = ("import sys, autograder.__main__, autograder.grade; "
             "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]; "
             "print(bad, file=sys.stderr); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", local], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"local grading imported Dask: {run.stderr}"


# -- a Lab 5-style sweep through the cluster (labkit.ablate with executor=ADDRESS)

NOTEBOOK_CELL = """\
import os
from pathlib import Path
from torch import nn

class TinyNet(nn.Module):
    def __init__(self, hidden=8, activation="relu"):
        super().__init__()
        Path(BUILT, f"{os.getpid()}-{os.urandom(4).hex()}").touch()  # which process built (and trained) it
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), act(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.body(x)
"""


def notebook_class(built: Path):
    """TinyNet as a notebook cell defines it: in __main__, its source only in linecache, so Dask sends it by
    value; it marks each build in ``built`` with the building process's id."""
    name = "<cell-sweep>"
    linecache.cache[name] = (len(NOTEBOOK_CELL), None, NOTEBOOK_CELL.splitlines(True), name)
    namespace = {"__name__": "__main__", "BUILT": str(built)}
    exec(compile(NOTEBOOK_CELL, name, "exec"), namespace)
    return namespace["TinyNet"]


def builders(built: Path) -> list:
    return [int(p.name.split("-")[0]) for p in built.iterdir()]


def test_a_sweep_on_the_cluster_gives_the_local_results_and_cache(cluster, fashion_mnist, tmp_path, monkeypatch):
    import torch

    from labkit.ablate import CLUSTER_ENV, Ablation

    built = tmp_path / "built"
    built.mkdir()
    net = notebook_class(built)
    train, test = fashion_mnist.train.subset(600, seed=0), fashion_mnist.test.subset(300, seed=0)
    base = {"hidden": 8, "activation": "relu", "epochs": 1, "batch_size": 50, "lr": 3e-3}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers (OMP_NUM_THREADS=1): the same arithmetic, the same numbers
    try:
        here = Ablation(net, base, train, test, cache_dir=tmp_path / "here", progress=False, executor=None)
        expected = here.grid(hidden=[4, 8], activation=["relu", "tanh"])
    finally:
        torch.set_num_threads(threads)
    for p in built.iterdir():
        p.unlink()
    there = Ablation(net, base, train, test, cache_dir=tmp_path / "there", progress=False,
                     executor=cluster.address)
    got = there.grid(hidden=[4, 8], activation=["relu", "tanh"])

    assert [same_outcome(r) for r in got] == [same_outcome(r) for r in expected]
    assert not any(r.cached for r in got) and there.runs == list(got)
    worker_pids = {proc.pid for proc in cluster.workers.values()}
    trained_on = [pid for pid in builders(built) if pid != os.getpid()]  # this process builds only for cache keys
    assert len(trained_on) == 4 and set(trained_on) <= worker_pids, (trained_on, worker_pids)
    assert sorted(p.name for p in (tmp_path / "there").glob("*.json")) == \
        sorted(p.name for p in (tmp_path / "here").glob("*.json")), "the same cache files as a local run"

    # the results file of a sweep on the cluster is the one of a local sweep, times aside
    save_runs(tmp_path / "here.json", here.runs)
    save_runs(tmp_path / "there.json", there.runs)
    assert [same_outcome(r) for r in load_runs(tmp_path / "there.json")] == \
        [same_outcome(r) for r in load_runs(tmp_path / "here.json")]

    # the address from the environment (what `autograder results --cluster` sets); cached runs stay here
    for p in built.iterdir():
        p.unlink()
    monkeypatch.setenv(CLUSTER_ENV, cluster.address)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    again = Ablation(net, base, train, test, cache_dir=tmp_path / "there", progress=False)
    runs = again.sweep("hidden", [4, 8, 16])  # two cached, one new
    assert [r.cached for r in runs] == [True, True, False]
    assert [pid for pid in builders(built) if pid != os.getpid()] != [] and \
        {pid for pid in builders(built) if pid != os.getpid()} <= worker_pids
    assert len([pid for pid in builders(built) if pid != os.getpid()]) == 1, "only the new run was trained there"
    _clients.pop(cluster.address).close()  # before the fixture stops the scheduler it is connected to


def test_results_with_an_unreachable_cluster_says_so_before_any_kernel_starts(tmp_path):
    run = subprocess.run([sys.executable, "-m", "autograder", "results", "05_lenet", "--cluster", "tcp://127.0.0.1:9"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in run.stderr and "dask scheduler" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_worker_killed_while_it_grades_costs_nothing(tmp_path, cluster, sandbox):
    """SIGKILL the worker grading a submission: Dask runs it on the other one; one row each, merged once."""
    course = tiny_course(tmp_path / "course")
    slow = dumps(student_notebook(extra={"add": "import time\ntime.sleep(3)"}))
    students = ["slow-a", "slow-b", "slow-c"]
    collect(LAB, make_zip(tmp_path / "download.zip", {f"{s}_07_tiny.ipynb": (slow, datetime(2025, 3, 1, 12))
                                                      for s in students}), course, say=quiet)
    pids = {proc.pid: name for name, proc in cluster.workers.items() if proc.poll() is None}
    assert len(pids) == 2
    command = [sys.executable, "-m", "autograder", "grade", LAB, "--course", str(course.root), "--cluster",
               cluster.address, "--sandbox", "full", "--cell-timeout", "30"]
    grader = subprocess.Popen(command, env=_env(cluster.tasks), cwd=ROOT, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    out = []
    reader = threading.Thread(target=lambda: out.extend(grader.stdout), daemon=True)
    reader.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and grader.poll() is None:
        for folder in cluster.tasks.glob("labkit-task-*"):
            pid, student = re.match(r"labkit-task-(\d+)-(.+)-[^-]+$", folder.name).groups()
            if int(pid) in pids and (folder / "job").exists():  # it is grading: the job's folder is there
                time.sleep(1)
                os.killpg(int(pid), signal.SIGKILL)
                killed = (pids[int(pid)], student)
                break
        time.sleep(0.1)
    assert killed, f"no worker was seen grading; the command said:\n{''.join(out)}"
    assert grader.wait(timeout=240) == 0, "".join(out)
    reader.join(10)
    text = "".join(out)
    got = rows(course.grades_csv(LAB))
    assert sorted(got) == students and all((r["status"], r["score"]) == ("graded", "5") for r in got.values()), got
    progress = re.findall(r"^\[\d+/3\] (\S+):", text, re.M)
    assert sorted(progress) == students, f"each submission merged once:\n{text}"
    name, student = killed
    record = course.record(student, LAB)
    assert record["dask_worker"] != name, f"{student} was graded again on another worker: {record}"
    assert "Dask dashboard: http" in text
    for folder in cluster.tasks.glob("labkit-task-*"):  # the killed worker's folder stays behind
        shutil.rmtree(folder, ignore_errors=True)

"""Grading throughput and the cost of one submission, phase by phase.

    python bench/grading.py [--k 8] [--lab 03_mlp] [--ways w2,cluster]   the throughput columns below
    python bench/grading.py --phases [--labs 01_xor ...] [--k 3] [--bare]   where a submission's time goes
    python bench/grading.py --merges 200                the gradebook's merge rate (SQLite; PostgreSQL too
                                                        where Debian's postgresql is installed)

Throughput: grades K copies of a lab's solution (default Lab 3, K = 8) four ways, in one run,
each in a fresh temporary course folder:

  plain      nbgrader autograde LAB (one process, one notebook after the other, no sandbox)
  workers 1  python -m autograder grade LAB --workers 1 (sandbox, one worker)
  workers 2  python -m autograder grade LAB --workers 2 (sandbox, two workers)
  cluster 2  grade LAB --cluster ADDRESS on a loopback Dask cluster: a real `dask scheduler` and two
             `dask worker --nthreads 1` on 127.0.0.1, started here (as tests/test_cluster.py does)

and prints submissions per minute for each and the ratios: the sandbox's overhead
(plain vs workers 1), the parallel speed-up (workers 2 vs plain) and the cluster's
overhead (cluster 2 vs workers 2, target <= 10 %).  Every kernel uses one OpenMP thread.
Each way must give every copy full marks, or the run stops.  Timings on a shared
machine are noisy: the ratios come from one run, so the ways see about the same load
(the load average is printed).

--phases: for each lab (default all five), K copies (default 3) graded with --workers 1; prints
the worker's per-phase timings (the ``phases`` of each result, autograder/worker.py ``Phases``)
of the steady jobs (the worker's first job also pays its start, shown apart as worker_start),
the kernel's own running (the harness, which imports torch, numpy and labkit, and the notebook's
cells), the overhead (everything else: a submission's wall time plus its gradebook merge, minus
the kernel's running), the cells that call set_seed first and load the data, and the per-run
costs (sandbox probe, the lab's template and gradebook entries, the CSV).  --bare also runs each
notebook in a plain local kernel (no sandbox, no harness, no nbgrader) for its cells' own time.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbformat  # noqa: E402

from autograder import CONFIG_DIR, ROOT, nbgrader, solution_notebook, use_tool_path  # noqa: E402
from autograder.collect import collect  # noqa: E402
from autograder.course import Course  # noqa: E402
from autograder.grade import grade  # noqa: E402


def students(k):
    return [f"student-{i:02d}" for i in range(1, k + 1)]


def plain_nbgrader(lab: str, k: int, base: Path) -> float:
    course = base / "plain"
    shutil.copytree(ROOT / "solutions" / lab, course / "source" / lab)
    (course / "nbgrader_config.py").write_text(
        f"load_subconfig({str(CONFIG_DIR / 'nbgrader_config.py')!r})  # the kit's settings, then this course's\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.source_directory = 'source'\nc.CourseDirectory.release_directory = 'release'\n")
    nbgrader("generate_assignment", lab, "--force", cwd=course)
    for student in students(k):
        folder = course / "submitted" / student / lab
        folder.mkdir(parents=True)
        nbformat.write(solution_notebook(lab), folder / f"{lab}.ipynb")
    start = time.perf_counter()
    nbgrader("autograde", lab, "--create", "--force", cwd=course)
    seconds = time.perf_counter() - start
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students(k):
            submission = gb.find_submission(lab, student)
            if submission.score != submission.max_score:
                sys.exit(f"plain nbgrader gave {student} {submission.score}/{submission.max_score}: not a fair run")
    return seconds


def _download(lab: str, k: int, base: Path, name: str) -> Course:
    root, download = base / name, base / f"download-{name}"
    for student in students(k):
        (download / student).mkdir(parents=True)
        nbformat.write(solution_notebook(lab), download / student / f"{lab}.ipynb")
    course = Course(root)
    collect(lab, download, course, say=lambda *a: None)
    return course


def sandboxed(lab: str, k: int, base: Path, workers: int, cluster: str | None = None) -> tuple:
    """Seconds to grade K copies here on ``workers`` processes (or on the Dask cluster at ``cluster``),
    and the records."""
    name = "cluster" if cluster else f"workers-{workers}"
    course = _download(lab, k, base, name)
    start = time.perf_counter()
    records = grade(lab, course, workers=workers, force=True, sandbox="full", cluster=cluster, say=lambda *a: None)
    seconds = time.perf_counter() - start
    for student, record in records.items():
        if record["score"] != record["max_score"] or record["status"] != "graded":
            sys.exit(f"grade {name} gave {student} {record['score']}/{record['max_score']} "
                     f"({record['status']}: {record['reason']}): not a fair run")
    return seconds, records


class LoopbackCluster:
    """`dask scheduler` and two `dask worker --nworkers 1 --nthreads 1 --no-nanny` on 127.0.0.1, as
    tests/test_cluster.py starts them; their TMPDIR (each task's folder) is world-readable, as the
    sandbox's uid must reach its staging folder there."""

    def __init__(self, base: Path, workers: int = 2):
        from distributed import Client

        self.base, self.procs = base, []
        self.tasks = Path(tempfile.mkdtemp(prefix="labkit-dask-bench-"))
        self.tasks.chmod(0o755)
        binary = Path(sys.executable).parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   PATH=f"{binary}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1",
                   TMPDIR=str(self.tasks))

        def start(*args, log):
            self.procs.append(subprocess.Popen([str(binary / "dask"), *args], env=env, cwd=base,
                                               start_new_session=True, stdout=open(base / log, "w"),  # noqa: SIM115
                                               stderr=subprocess.STDOUT))

        file = base / "scheduler.json"
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(file),
              log="scheduler.log")
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        client = Client(scheduler_file=str(file), timeout="30s")
        self.address = client.scheduler.address
        for n in range(1, workers + 1):
            start("worker", self.address, "--nworkers", "1", "--nthreads", "1", "--no-nanny", "--name", f"w{n}",
                  log=f"w{n}.log")
        client.wait_for_workers(workers, timeout=60)
        client.close()

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.tasks, ignore_errors=True)


def on_cluster(lab: str, k: int, base: Path) -> tuple:
    (base / "dask").mkdir()
    cluster = LoopbackCluster(base / "dask")
    try:
        return sandboxed(lab, k, base, 2, cluster=cluster.address)
    finally:
        cluster.close()


def throughput(args) -> int:
    print(f"grading {args.k} copies of the {args.lab} solution on {os.cpu_count()} cores; "
          f"load average before: {_load()}", flush=True)
    names = {"plain": "plain nbgrader", "w1": "grade --workers 1", "w2": "grade --workers 2",
             "cluster": "grade --cluster (2)"}
    wanted = [w.strip() for w in args.ways.split(",")] if args.ways else \
        ["plain", "w1", "w2"] + ([] if args.no_cluster else ["cluster"])
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        base = Path(tmp)
        seconds, records = {}, {}
        ways = {"plain": lambda: (plain_nbgrader(args.lab, args.k, base), {}),
                "w1": lambda: sandboxed(args.lab, args.k, base, 1),
                "w2": lambda: sandboxed(args.lab, args.k, base, 2),
                "cluster": lambda: on_cluster(args.lab, args.k, base)}
        for way in wanted:
            name = names[way]
            seconds[name], records[name] = ways[way]()
            print(f"  {name:<20} {seconds[name]:7.1f} s  {60 * args.k / seconds[name]:6.2f} submissions/min  "
                  f"(load average {_load()})", flush=True)
    print(f"load average after: {_load()}")
    plain, one, two = (seconds.get(names[w]) for w in ("plain", "w1", "w2"))
    if plain and two:
        print(f"speed-up, workers 2 vs plain nbgrader:   {plain / two:.2f}x  (target >= 1.5x)")
    if plain and one:
        print(f"sandbox overhead, workers 1 vs plain:    {100 * (one / plain - 1):+.1f} %  (target <= 20 %)")
    if one and two:
        print(f"speed-up, workers 2 vs workers 1:        {one / two:.2f}x")
    if two and names["cluster"] in seconds:
        dask = seconds[names["cluster"]]
        print(f"cluster overhead, cluster 2 vs workers 2: {100 * (dask / two - 1):+.1f} %  (target <= 10 %)")
        print(f"  per task: {2 * (dask - two) / args.k:+.2f} worker-seconds more than a local job "
              f"(2 workers x the difference / K)")
        for name in (names["w2"], names["cluster"]):
            mean = mean_phases(records[name].values())
            rest = sum(v for k, v in mean.items() if k not in ("worker_start", "harness", "notebook"))
            print(f"  {name}: mean seconds per submission: everything but worker_start, harness and notebook "
                  f"{rest:.2f}; " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()))
    return 0


# ---------------------------------------------------------------------------- --phases

ORDER = ["worker_start", "checks", "course_folder", "sandbox_setup", "nbgrader_before", "kernel_start", "harness",
         "notebook", "kernel_stop", "nbgrader_after", "sandbox_cleanup", "results", "worker_other", "task_unpack",
         "merge"]
WHAT = {"worker_start": "worker process start + imports (once per worker)",
        "checks": "submission read + compared with the lab", "course_folder": "nbgrader course folder + gradebook copy",
        "sandbox_setup": "sandbox scratch + config (+ font cache)",
        "nbgrader_before": "nbgrader: app, gradebook entries, sanitizing",
        "kernel_start": "sandbox launcher + bubblewrap + kernel start",
        "harness": "harness: torch/numpy/labkit imports",
        "notebook": "the notebook's own cells", "kernel_stop": "kernel + sandbox stop",
        "nbgrader_after": "nbgrader: scores saved, notebook written", "sandbox_cleanup": "sandbox removed + report",
        "results": "scores and outputs read back", "worker_other": "rest of the job in the worker",
        "task_unpack": "task bytes unpacked (cluster)", "merge": "parent: gradebook merge + notebook copy"}


def mean_phases(records) -> dict:
    """The mean of each phase over the records (worker_start: over the records that had one)."""
    records = list(records)
    out = {}
    for name in ORDER:
        values = [r["phases"][name] for r in records if name in (r.get("phases") or {})]
        if values:
            out[name] = sum(values) / (len(values) if name == "worker_start" else len(records))
    return out


def bare_notebook(lab: str) -> dict:
    """The solution run in a plain local kernel (no sandbox, no harness, no nbgrader), as autograding runs it
    (quick mode, one thread): {"cells": seconds of all code cells, "by_index": {index: seconds}, "start": the
    kernel's start}."""
    from nbclient import NotebookClient

    nb = solution_notebook(lab)
    times, began = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as folder:
        shutil.copytree(ROOT / "solutions" / lab, folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        client = NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": folder}})
        client.on_cell_execute = lambda cell, cell_index: began.__setitem__(cell_index, time.perf_counter())
        client.on_cell_executed = lambda cell, cell_index, execute_reply: times.__setitem__(
            cell_index, time.perf_counter() - began[cell_index])
        old = os.environ.get("NBGRADER_EXECUTION")
        os.environ["NBGRADER_EXECUTION"] = "autograde"
        try:
            start = time.perf_counter()
            with client.setup_kernel():
                started = time.perf_counter() - start
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type == "code" and cell.source.strip():
                        client.execute_cell(cell, index)
        finally:
            os.environ.pop("NBGRADER_EXECUTION") if old is None else os.environ.__setitem__("NBGRADER_EXECUTION", old)
    return {"cells": sum(times.values()), "by_index": times, "start": started}


def _first_cell(lab: str, *needles) -> int | None:
    for index, cell in enumerate(solution_notebook(lab).cells):
        if cell.cell_type == "code" and any(n in cell.source for n in needles):
            return index
    return None


def phases(args) -> int:
    labs = args.labs or ["01_xor", "02_softmax", "03_mlp", "04_activations", "05_lenet"]
    k = args.k if args.k_given else 3
    print(f"per-phase cost of one submission: {k} copies per lab, grade --workers 1 (sandbox), quick mode, "
          f"1 thread; {os.cpu_count()} cores; load average before: {_load()}", flush=True)
    table = {}
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        for lab in labs:
            base = Path(tmp) / lab
            base.mkdir()
            bare = bare_notebook(lab) if args.bare else None
            seconds, records = sandboxed(lab, k, base, 1)
            first = [r for r in records.values() if "worker_start" in r["phases"]]
            # the worker's first job also pays what the rest find warm (first imports, caches): steady = the others
            steady = [r for r in records.values() if "worker_start" not in r["phases"]] or list(records.values())
            mean = mean_phases(steady)
            if first:
                mean["worker_start"] = first[0]["phases"]["worker_start"]
            seed, data = _first_cell(lab, "set_seed("), _first_cell(lab, "load_mnist(", "load_fashion_mnist(",
                                                                        "xor_data(")

            def cell_time(index, records=steady):
                values = [s for r in records for i, _label, s in r.get("cells") or [] if i == index]
                return sum(values) / len(values) if values else 0.0

            def per(get, records=steady):
                return sum(get(r) for r in records) / len(records)

            walls = [r["wall_seconds"] + r["phases"].get("merge", 0) for r in records.values()]
            table[lab] = {
                "phases": mean, "run": seconds, "per_run": seconds - sum(walls), "steady": len(steady),
                "per_submission": per(lambda r: r["wall_seconds"] + r["phases"].get("merge", 0)),
                "kernel_running": per(lambda r: r["phases"].get("harness", 0) + r["phases"].get("notebook", 0)),
                "overhead": per(lambda r: r["wall_seconds"] + r["phases"].get("merge", 0) - r["phases"].get(
                    "harness", 0) - r["phases"].get("notebook", 0)),
                "seed_cell": (cell_time(seed), bare["by_index"].get(seed) if bare else None),
                "data_cell": (cell_time(data), bare["by_index"].get(data) if bare else None),
                "bare": bare["cells"] if bare else None, "load": _load()}
            print(f"  {lab}: {seconds:.1f} s for {k}" + (f"; bare notebook {bare['cells']:.1f} s" if bare else "")
                  + f"; load average {_load()}", flush=True)
    print()
    print(f"{'phase: seconds per submission (steady worker, mean)':<52}" + "".join(f"{lab:>15}" for lab in labs))
    for name in ORDER:
        if any(name in table[lab]["phases"] for lab in labs):
            cells = "".join(f"{table[lab]['phases'].get(name, 0):15.2f}" for lab in labs)
            print(f"  {name:<16} {WHAT[name][:33]:<33}{cells}")
    rows = [("per submission: its wall time + its merge", lambda t: t["per_submission"]),
            ("the kernel running: harness + notebook", lambda t: t["kernel_running"]),
            ("OVERHEAD: the rest (target <= 2 s)", lambda t: t["overhead"]),
            ("first set_seed cell, graded" + (" (bare)" if args.bare else ""), "seed_cell"),
            ("data-load cell, graded" + (" (bare)" if args.bare else ""), "data_cell"),
            ("per run, once per lab (probe, template, CSV)", lambda t: t["per_run"]),
            ("load average (1 min) after the lab", lambda t: float(t["load"].split()[0]))]
    if args.bare:
        rows.insert(2, ("bare notebook: its cells in a plain kernel", lambda t: t["bare"]))
    for title, get in rows:
        if isinstance(get, str):
            cells = "".join(f"{table[lab][get][0]:15.2f}" if not args.bare else
                            f"{table[lab][get][0]:7.2f} ({table[lab][get][1] or 0:5.2f})" for lab in labs)
        else:
            cells = "".join(f"{get(table[lab]):15.2f}" for lab in labs)
        print(f"{title:<52}{cells}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1, default=str))
    return 0


# ---------------------------------------------------------------------------- --merges

def merge_rate(n: int, lab: str = "01_xor") -> int:
    """Merges per second into a course's gradebook (grade.merge: one result, the parent's only gradebook
    write per submission), SQLite on this disk and, where Debian's postgresql is installed, a PostgreSQL server
    on 127.0.0.1 (tests/postgres_server.py; fsync off, as the test server runs)."""
    from autograder.grade import add_to_gradebook, merge, prepare_template

    with tempfile.TemporaryDirectory(prefix="bench-merges-") as tmp:
        base = Path(tmp)
        _, records = sandboxed(lab, 1, base, 1)
        result = dict(next(iter(records.values())))
        targets = [("SQLite", None)]
        server = None
        sys.path.insert(0, str(ROOT / "tests"))
        try:
            from postgres_server import PostgresServer, server_bin

            if server_bin() is not None:
                server = PostgresServer(server_bin())
                server.start()
                server.client("createdb", "bench")
                targets.append(("PostgreSQL", server.url("bench")))
        except Exception as exc:  # noqa: BLE001 - PostgreSQL is optional here
            print(f"PostgreSQL not measured: {exc}"[:300])
        try:
            for name, url in targets:
                course = Course(base / f"merge-{name}", url)
                course.check_lab(lab)
                template = prepare_template(course, lab)
                add_to_gradebook(course, lab, template)
                start = time.perf_counter()
                for i in range(n):
                    merge(course, lab, dict(result, student=f"s{i:05d}"))
                first = time.perf_counter() - start
                start = time.perf_counter()
                for i in range(n):
                    merge(course, lab, dict(result, student=f"s{i:05d}"))
                again = time.perf_counter() - start
                print(f"  {name:<11} {n / first:7.1f} merges/s new students, {n / again:7.1f} merges/s again "
                      f"({1000 * first / n:.1f} and {1000 * again / n:.1f} ms each); load average {_load()}")
        finally:
            if server is not None:
                server.remove()
    return 0


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=None, help="copies of the solution to grade (8; 3 with --phases)")
    parser.add_argument("--lab", default="03_mlp", help="which lab's solution (03_mlp)")
    parser.add_argument("--no-cluster", action="store_true", help="leave out the Dask cluster column")
    parser.add_argument("--ways", help="only these columns, in this order: a comma-separated subset of "
                        "plain,w1,w2,cluster")
    parser.add_argument("--phases", action="store_true", help="the per-phase cost of one submission, per lab")
    parser.add_argument("--labs", nargs="*", help="with --phases: which labs (all five)")
    parser.add_argument("--json", help="with --phases: also write the table as JSON to this file")
    parser.add_argument("--bare", action="store_true", help="with --phases: also run each notebook bare (a plain "
                        "local kernel: no sandbox, no harness, no nbgrader) for its cells' own time")
    parser.add_argument("--merges", type=int, default=0, metavar="N", help="time N gradebook merges instead")
    args = parser.parse_args(argv)
    args.k_given = args.k is not None
    args.k = args.k if args.k is not None else 8
    if args.k < 1:
        parser.error("--k must be at least 1")
    if args.ways and not set(args.ways.split(",")) <= {"plain", "w1", "w2", "cluster"}:
        parser.error("--ways takes a comma-separated subset of plain,w1,w2,cluster")
    use_tool_path()
    os.environ["OMP_NUM_THREADS"] = "1"
    if args.merges:
        return merge_rate(args.merges)
    if args.phases:
        return phases(args)
    return throughput(args)


if __name__ == "__main__":
    sys.exit(main())

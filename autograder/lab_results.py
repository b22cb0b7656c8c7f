"""Regenerate a lab's recorded full-mode results (Lab 5 ships them in labkit/reference/).

    python -m autograder results 05_lenet --jobs 2
    python -m autograder results 05_lenet --cluster tcp://HOST:8786

runs the lab's solution notebook in full mode with LABKIT_RERUN=1 (train every
configuration, read nothing recorded) in JOBS kernels side by side.  They share
the ablation cache (``lk.ablate.default_cache_dir``), so they split the runs
between them, and an interrupted regeneration resumes where it stopped.  After
the notebook's own cells, each kernel runs one more cell, added here and not part
of the lab (students never see it): it writes the runs of every ``lk.Ablation``
the notebook made to labkit/reference/<lab>.json.  The executed notebooks are
kept in build/lab-results/ to read the logs and plots.

With a Dask scheduler's address (``--cluster``), the kernels' Ablations train on that
cluster's workers instead (``LABKIT_CLUSTER``, see labkit.ablate): each sweep's runs side
by side, every finished run written to the same cache by the kernel, and the results
file written as without a cluster.
"""
import subprocess
import sys
import time
from pathlib import Path

from autograder import ROOT, tool_env

BUILD = ROOT / "build" / "lab-results"


def output_path(lab: str) -> Path:
    return ROOT / "labkit" / "reference" / f"{lab}.json"


def regenerate(lab: str, jobs: int = 2, cluster: str | None = None) -> Path:
    """Run the solution notebook of ``lab`` in ``jobs`` full-mode kernels; return the results file.
    ``cluster``: a Dask scheduler's address, where the kernels' Ablations train their runs."""
    source = ROOT / "solutions" / lab / f"{lab}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"no solution notebook {source}")
    BUILD.mkdir(parents=True, exist_ok=True)
    env = tool_env()
    env.update(LABKIT_QUICK="0", LABKIT_RERUN="1", OMP_NUM_THREADS="1")
    env.pop("NBGRADER_EXECUTION", None)
    env.pop("LABKIT_CLUSTER", None)
    if cluster:
        from labkit.ablate import CLUSTER_ENV, connect_cluster

        try:
            connect_cluster(cluster).close()  # unreachable or no Dask: say so now, not in the kernels' logs
        except (ImportError, ConnectionError) as exc:
            raise SystemExit(f"--cluster: {exc}") from None
        env[CLUSTER_ENV] = cluster
    start = time.perf_counter()
    workers = []
    for i in range(jobs):
        executed = BUILD / f"{lab}-worker{i}.ipynb"
        log = open(BUILD / f"{lab}-worker{i}.log", "w")  # noqa: SIM115 - closed below
        workers.append((subprocess.Popen([sys.executable, "-m", "autograder.lab_results", "--execute", str(source),
                                          str(executed), str(output_path(lab))], cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT),
                        log, executed))
        time.sleep(5)  # let the first kernel claim its first run before the next one starts looking
    failed = []
    for proc, log, executed in workers:
        proc.wait()
        log.close()
        if proc.returncode != 0:
            failed.append(f"{executed} (exit {proc.returncode}; log: {Path(log.name)})")
    if failed:
        raise RuntimeError("regenerating the results failed in: " + "; ".join(failed))
    where = f" training on the Dask cluster at {cluster}" if cluster else ""
    minutes = (time.perf_counter() - start) / 60
    print(f"{lab}: {output_path(lab)} written by {jobs} kernel(s){where} in {minutes:.1f} min; "
          f"executed notebooks in {BUILD}")
    return output_path(lab)


def snapshot(lab: str) -> Path:
    """Write the results file from the runs finished so far in the shared cache (no training): the
    full-mode runs (no subset) of the lab, newest last.  For a regeneration that could not finish.
    It cannot tell runs of older model code from current ones: empty the cache folder
    (``lk.ablate.default_cache_dir(lab)``) after changing the solution's model."""
    from labkit.ablate import Ablation, default_cache_dir, save_runs

    runs = []
    for path in sorted((default_cache_dir(lab) or Path()).glob("*.json"), key=lambda p: p.stat().st_mtime):
        run = Ablation._read_cached(path)
        if run is not None and run.config.get("subset") is None:
            runs.append(run)
    print(f"{lab}: {len(runs)} finished full-mode run(s) from {default_cache_dir(lab)}")
    return save_runs(output_path(lab), runs)


SAVE_RUNS = """\
# Added by autograder.lab_results (not part of the lab): record every run of the notebook's ablations.
import labkit.ablate as _labkit_ablate
_ablations = {id(_value): _value for _value in list(globals().values())
              if isinstance(_value, _labkit_ablate.Ablation)}  # each once, also if it has two names
_recorded = [run for _ablation in _ablations.values() for run in _ablation.runs]
if not _recorded:
    raise RuntimeError("the notebook made no lk.Ablation runs: nothing to record")
print(f"saved {len(_recorded)} runs to {_labkit_ablate.save_runs(OUT, _recorded)}")"""


def save_runs_source(out) -> str:
    """The cell appended to the notebook before it runs: it saves the runs of every ``Ablation`` in the
    kernel's namespace (in the order the notebook made them) to ``out``."""
    return SAVE_RUNS.replace("OUT", repr(str(out)))


def _execute(source: str, executed: str, out: str) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    save = nbformat.v4.new_code_cell(save_runs_source(out))
    save.id = "labkit-lab-results"
    nb.cells.append(save)
    # allow_errors: a failing test cell (a target missed) must not stop the runs after it; the
    # errors are listed at the end and make the command fail.
    client = NotebookClient(nb, timeout=None, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(Path(source).parent)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, executed)
    errors = [(i, output.ename, output.evalue) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.output_type == "error"]
    for i, name, value in errors:
        print(f"cell {i}: {name}: {value}", file=sys.stderr)
    if errors:
        sys.exit(f"{len(errors)} cell(s) failed in {executed}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--execute":
        _execute(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: python -m autograder results LAB [--jobs N]")

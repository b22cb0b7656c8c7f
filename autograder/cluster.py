"""`python -m autograder grade LAB --cluster tcp://HOST:PORT`: grade on the workers of a Dask cluster.

One Dask task per submission.  The task carries everything it needs as bytes (the
submission's folder and the lab's template: its source and a gradebook of its cells),
because lab machines, Slurm nodes and Kubernetes pods rarely share a disk with the
instructor's machine; the template is a task of its own (``template_task``) that every
grading task of the lab depends on, so its bytes travel once per worker, not once per
submission.  On the worker the task writes them into a temporary folder, points the
job there and runs the same sandboxed grading as on one machine (``grade.Worker``: a
``python -m autograder.worker`` process, one job line in, one result line out, kept for
the worker thread's next tasks as a local worker is kept for its next jobs); it answers
with the result and the autograded notebook(s) as bytes.

The instructor's command stays the only writer of grades: results are merged here as
they arrive.  When a worker dies while grading, Dask's scheduler runs the task again
on another worker (its ``distributed.scheduler.allowed-failures``, 3 by default);
after that many deaths the submission is recorded as an error.  Dask is imported only
by this module, and only with --cluster.
"""
from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from autograder.vocabulary import error_result

INSTALL = 'pip install "dask[distributed]"  (or: pip install -e ".[grader,cluster]")'


def pack(folder: Path) -> dict:
    """{relative path: bytes} of every file under ``folder`` (notebook checkpoints left out)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".ipynb_checkpoints" not in p.parts}


def unpack(files: dict, folder: Path) -> Path:
    folder = Path(folder)
    for name, data in files.items():
        target = (folder / name).resolve()
        if not target.is_relative_to(folder.resolve()):
            raise ValueError(f"a packed path leaves its folder: {name!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return folder


_threads = itertools.count()
_local = threading.local()


def worker_slot() -> int:
    """A sandbox uid slot unique to this Dask worker process and thread (see isolation.UID_BASE):
    the process id, as ``run_jobs`` uses the instructor's, and the thread's index."""
    if not hasattr(_local, "index"):
        _local.index = next(_threads)
    return (os.getpid() % 65536) * 64 + _local.index % 64


def _grading_process():
    """This Dask worker thread's ``grade.Worker`` (a ``python -m autograder.worker`` process), started on its
    first task and kept for the next ones, as ``grade.run_jobs`` keeps one per local worker: its start (an
    interpreter and nbgrader's imports, seconds) is paid once per thread, not once per task.  A process that
    died is replaced; all of them are closed when the Dask worker's process exits."""
    from autograder.grade import Worker

    worker = getattr(_local, "worker", None)
    if worker is not None and worker.alive():
        return worker
    if worker is not None:
        worker.close(kill=True)
    logs = Path(tempfile.mkdtemp(prefix=f"labkit-grader-{os.getpid()}-{worker_slot() % 64}-"))
    _local.worker = worker = Worker(worker_slot(), logs)
    _local.logs = logs
    with _workers_lock:
        if not _workers:
            atexit.register(_close_workers)
        _workers.append((worker, logs))
    return worker


_workers: list = []
_workers_lock = threading.Lock()


def _close_workers():
    with _workers_lock:
        for worker, logs in _workers:
            worker.close(kill=not worker.alive())
            shutil.rmtree(logs, ignore_errors=True)
        _workers.clear()


def template_task(template: dict) -> dict:
    """The lab's template as a Dask task of its own, on which every grading task of the lab depends: its bytes
    (a few hundred kB) go to the scheduler once, not inside each of a thousand tasks, and each Dask worker
    fetches the result once (from the worker holding it) and keeps it for its next tasks.  A task, not
    ``Client.scatter``: when the worker holding it dies, the scheduler runs it again from its arguments."""
    return template


def grade_task(job: dict, submission: dict, template: dict) -> dict:
    """Runs on a Dask worker: grade one submission sent as bytes; return the result and the graded notebooks."""
    try:
        from distributed import get_worker

        where = get_worker().name
    except (ImportError, ValueError):
        where = "?"
    started = time.monotonic()
    unpacking = time.time()
    tmp = Path(tempfile.mkdtemp(prefix=f"labkit-task-{os.getpid()}-{job['student']}-"))
    try:
        job = dict(job, submission_dir=str(unpack(submission, tmp / "submission")),
                   template=str(unpack(template, tmp / "template")), job_dir=str(tmp / "job"), slot=worker_slot())
        unpacked = time.time() - unpacking
        worker = _grading_process()
        log = _local.logs / f"worker-{worker.slot}.log"
        before = log.stat().st_size if log.exists() else 0
        result = worker.run(job)
        if result.get("status") == "error" and log.exists():
            with open(log, "rb") as f:
                f.seek(before)
                text = f.read().decode(errors="replace")
            result["error_detail"] = ((result.get("error_detail") or "") + "\n" + text[-4000:]).strip()
        graded = {}
        for part in result.get("parts") or [result]:
            path = part.pop("autograded", None)
            if path and Path(path).exists():
                graded[part.get("notebook") or job["lab"]] = Path(path).read_bytes()
        result.pop("autograded", None)
        if isinstance(result.get("phases"), dict):
            result["phases"]["task_unpack"] = round(unpacked, 3)
        result.setdefault("wall_seconds", round(time.monotonic() - started, 3))
        result["dask_worker"] = str(where)  # kept in the student's record: where it was graded
        return {"result": result, "autograded": graded, "worker": str(where)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def connect(address: str, timeout: str = "10s"):
    """A ``distributed.Client`` of the scheduler at ``address``, or SystemExit saying what to install or check."""
    try:
        from distributed import Client
    except ImportError:
        raise SystemExit(f"--cluster {address}: grading on a cluster needs Dask, which is not installed here.\n"
                         f"Install it: {INSTALL}") from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise SystemExit(f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}).\n"
                         "Check that `dask scheduler` runs there and listens on that port (it prints "
                         "'Scheduler at: tcp://...'), that a firewall lets this machine reach it, and that "
                         "--cluster / course.toml [grading] cluster names it exactly.") from None


def _arrived(job: dict, reply: dict) -> tuple:
    """(job, result) as ``on_result`` takes it: the graded notebooks written under the job's own folder."""
    result = reply["result"]
    job_dir = Path(job["job_dir"])
    shutil.rmtree(job_dir, ignore_errors=True)
    for part in result.get("parts") or [result]:
        data = reply["autograded"].get(part.get("notebook") or job["lab"])
        if data is not None:
            path = job_dir / "returned" / f"{part.get('notebook') or job['lab']}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            part["autograded"] = str(path)
    if result.get("parts") and len(result["parts"]) == 1 and "autograded" in result["parts"][0]:
        result["autograded"] = result["parts"][0]["autograded"]
    return job, result


def run_jobs_on_cluster(jobs: list, address: str, log_dir: Path, on_result, say=print, alone: bool = False) -> None:
    """Run jobs as Dask tasks on the cluster at ``address``; call on_result(job, result) in this thread as
    they finish (``grade.run_jobs``'s contract).  ``alone``: one task at a time, nothing beside it."""
    from distributed import as_completed, wait
    from distributed.scheduler import KilledWorker

    client = connect(address)
    try:
        workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        say(f"Dask dashboard: {client.dashboard_link} ({address}, {workers} worker(s) connected)")
        if not workers:
            say(f"WARNING: no Dask worker is connected yet: the tasks wait for one (start `dask worker {address}`)")
        templates = {}

        def submit(job):
            if job["template"] not in templates:  # sent once, as a task of its own (see template_task)
                templates[job["template"]] = client.submit(
                    template_task, pack(Path(job["template"])), pure=False,
                    key=f"template-{job['lab']}-{Path(job['template']).name}-{os.urandom(4).hex()}")
            return client.submit(grade_task, job, pack(Path(job["submission_dir"])), templates[job["template"]],
                                 key=f"grade-{job['lab']}-{job['student']}-{os.urandom(4).hex()}", pure=False)

        def finished(future, job):
            try:
                return _arrived(job, future.result())
            except KilledWorker as exc:
                return job, error_result(job["student"], job["lab"], "every Dask worker that graded this submission "
                                         "died (Dask's allowed-failures was reached); see the workers' logs",
                                         str(exc)[-4000:])
            except Exception as exc:  # noqa: BLE001 - a task's failure is that submission's, not the batch's
                return job, error_result(job["student"], job["lab"], f"the Dask task failed: {type(exc).__name__}: "
                                         f"{str(exc)[:200]}", repr(exc)[-4000:])
            finally:
                future.release()

        if alone:  # one task on the whole cluster at a time: nothing of this run beside it
            for job in jobs:
                future = submit(job)
                wait(future)
                on_result(*finished(future, job))
            return
        futures = {}
        for job in jobs:
            future = submit(job)
            futures[future.key] = (future, job)
        try:
            for future in as_completed([f for f, _ in futures.values()]):
                on_result(*finished(future, futures[future.key][1]))
        except BaseException:
            client.cancel([f for f, _ in futures.values()])
            raise
    finally:
        client.close()

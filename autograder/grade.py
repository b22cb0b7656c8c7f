"""`python -m autograder grade LAB`: autograde every collected submission of a lab, in sandboxes, in parallel.

The parent (this module) is the only writer of the course's gradebook and of
grades/<lab>.csv.  Grading workers (``autograder.worker``, one process per
``--workers``) run nbgrader's autograde of one submission at a time against a
private copy of the lab's gradebook, with each notebook's kernel in its own
sandbox, and answer with JSON.  Results are merged as they arrive, so an
interrupted run keeps what it finished and the next run resumes.

A submission is graded again only when its file changed, the lab's source
changed, or the limits changed (``--force`` grades everything again).  Manual
grades in the gradebook are never overwritten.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

from autograder import ROOT, tool_env, use_tool_path
from autograder.course import Course
from autograder.isolation import Limits, describe, probe
from autograder.release import generate
from autograder.vocabulary import STATUSES, error_result, number

GRADER_VERSION = "1"
CSV_FIELDS = ["student", "lab", "score", "max_score", "status", "reason"]


# ---------------------------------------------------------------------------- the lab's gradebook entries

def fingerprint(course: Course, lab: str, limits: Limits, mode: str) -> str:
    digest = hashlib.sha256(f"{GRADER_VERSION}|{mode}|{json.dumps(limits.to_json(), sort_keys=True)}".encode())
    for path in sorted(course.source_dir(lab).rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts:
            digest.update(str(path.relative_to(course.source_dir(lab))).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def prepare_template(course: Course, lab: str) -> Path:
    """state/labs/<lab>/<source digest>/: the lab's source and a gradebook holding only its cells."""
    digest = hashlib.sha256()
    for path in sorted(course.source_dir(lab).rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts:
            digest.update(str(path.relative_to(course.source_dir(lab))).encode() + path.read_bytes())
    template = course.state / "labs" / lab / digest.hexdigest()[:16]
    if (template / "gradebook.db").exists():
        return template
    partial = template.with_name(template.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(course.source_dir(lab), partial / "source" / lab,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    generate(lab, partial, partial / "release", "source", f"sqlite:///{partial / 'gradebook.db'}")
    shutil.rmtree(template, ignore_errors=True)
    os.replace(partial, template)
    return template


def add_to_gradebook(course: Course, lab: str, template: Path) -> None:
    """Create or update the lab in the course's gradebook (nbgrader generate_assignment with --db);
    skipped when this very source is already there.  The stamp names each gradebook by its URL without
    a password (``Course.db_identity``): the same database, whatever password reached it."""
    from nbgrader.api import Gradebook, MissingEntry

    stamp = template / "in-gradebook.json"
    if stamp.exists() and course.db_identity in json.loads(stamp.read_text()):
        with Gradebook(course.db_url) as gb:
            try:
                gb.find_notebook(lab, lab)
                return
            except MissingEntry:
                pass
    release = course.state / "release"
    generate(lab, template, release, "source", course.db_url)
    shutil.rmtree(release, ignore_errors=True)
    urls = json.loads(stamp.read_text()) if stamp.exists() else []
    stamp.write_text(json.dumps(sorted(set(urls) | {course.db_identity})))


# ---------------------------------------------------------------------------- workers

class Worker:
    """One `python -m autograder.worker` process; jobs in on stdin, results out on stdout."""

    def __init__(self, slot: int, log_dir: Path):
        self.slot = slot
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(log_dir / f"worker-{slot}.log", "a")  # noqa: SIM115 - closed in close()
        env = tool_env()
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["OMP_NUM_THREADS"] = "1"
        self.spawned = time.time()  # the first job's phases count the process's start from here (worker_start)
        self.proc = subprocess.Popen([sys.executable, "-m", "autograder.worker"], cwd=ROOT, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True)

    def run(self, job: dict) -> dict:
        if self.spawned is not None:
            job, self.spawned = dict(job, spawned=self.spawned), None
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if line:
            return json.loads(line)
        return error_result(job["student"], job["lab"], "the grading worker died (see .autograder/logs)")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, kill=False):
        try:
            if kill:
                self.proc.kill()
            else:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self.log.close()


def run_jobs(jobs: list, workers: int, log_dir: Path, on_result) -> None:
    """Run jobs on ``workers`` worker processes; call on_result(job, result) in this thread as they finish."""
    todo, done = queue.Queue(), queue.Queue()
    for job in jobs:
        todo.put(job)
    pool = []

    def slot_loop(slot):
        worker = Worker(slot, log_dir)
        pool.append(worker)
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                break
            if not worker.alive():
                worker.close(kill=True)
                worker = Worker(slot, log_dir)
                pool.append(worker)
            # a sandbox uid of its own per worker of this run (as root): see isolation.UID_BASE
            job = dict(job, slot=(os.getpid() % 65536) * 64 + slot % 64)
            started = time.monotonic()
            result = worker.run(job)
            result.setdefault("wall_seconds", round(time.monotonic() - started, 3))
            done.put((job, result))
        worker.close()
        done.put(None)

    threads = [threading.Thread(target=slot_loop, args=(slot,), daemon=True) for slot in range(max(1, workers))]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(threads):
            try:
                item = done.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                finished += 1
            else:
                on_result(*item)
    except BaseException:
        while not todo.empty():
            todo.get_nowait()
        for worker in list(pool):
            worker.close(kill=True)
        raise


# ---------------------------------------------------------------------------- merging results

def merge(course: Course, lab: str, result: dict) -> None:
    """Write one result into the course's gradebook (manual grades kept) and copy the graded notebooks."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc

    student = result["student"]
    parts = {part["notebook"]: part for part in result.get("parts") or []}
    with Gradebook(course.db_url) as gb:
        gb.update_or_create_student(student)
        timestamp = parse_utc(result["timestamp"]) if result.get("timestamp") else None
        submission = gb.update_or_create_submission(lab, student, **({"timestamp": timestamp} if timestamp else {}))
        for notebook in submission.notebooks:
            part = parts.get(notebook.name, result)  # no parts: the grader failed on the whole submission
            for grade in notebook.grades:
                auto, _ = (part.get("grades") or {}).get(grade.name, [0 if part["status"] in
                                                                      ("invalid", "error") else None, None])
                grade.auto_score = auto
                grade.needs_manual_grade = grade.manual_score is not None or auto is None
        gb.db.commit()
        names = [notebook.name for notebook in submission.notebooks]
    for name in names:
        target = course.autograded(student, lab) / f"{name}.ipynb"
        if target.exists():
            target.chmod(0o644)
            target.unlink()
        graded = parts.get(name, {}).get("autograded")
        if graded and Path(graded).exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(graded, target)


def per_submission(course: Course, lab: str, value) -> dict:
    """{student: value(submission)} over ``lab``'s submissions in the course's gradebook (nbgrader's
    SubmittedAssignment objects, read while it is open); {} when the lab is not in it."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url) as gb:
        try:
            assignment = gb.find_assignment(lab)
        except MissingEntry:
            return {}
        return {submission.student.id: value(submission) for submission in assignment.submissions}


def scores(course: Course, lab: str) -> dict:
    """student -> (score, max score, uses a manual grade) from the course's gradebook."""
    return per_submission(course, lab, lambda submission: (
        submission.score, submission.max_score,
        any(g.manual_score is not None for n in submission.notebooks for g in n.grades)))


def reason(result: dict) -> str:
    """The one-line reason of the CSV: what passed, what failed and why, what happened; for a lab of several
    notebooks, each notebook's part with its score."""
    if len(result.get("parts") or []) > 1:
        text = "; ".join(f"{part['notebook']} {number(part.get('score') or 0)}/{number(part.get('max_score'))}: "
                         f"{reason(part)}" for part in result["parts"])
        return text if len(text) <= 900 else text[:897] + "..."
    parts = []
    status = result.get("status")
    tests = result.get("tests") or []
    if status == "invalid" or (status == "error" and not tests):
        parts.append(result.get("reason") or "; ".join(result.get("events") or []) or status)
    elif status == "error":
        parts += result.get("events") or []
        parts.append(f"details in .autograder/logs/{result.get('lab')}-{result.get('student')}.log; fix and run "
                     "grade again")
    else:
        passed = [t for t in tests if t["passed"]]
        parts.append(f"passed {len(passed)} of {len(tests)} tests")
        not_run = [t for t in tests if not t["passed"]
                   and (t.get("message") or "").startswith(("NotRun", "TestDidNot"))]
        failed = [t for t in tests if not t["passed"] and t not in not_run]
        if failed:
            shown = [f"{t['name']} ({_first_line(t.get('message'))})" for t in failed[:4]]
            parts.append("failed " + ", ".join(shown) + (f" and {len(failed) - 4} more" if len(failed) > 4 else ""))
        if not_run:
            did_not_report = [t for t in not_run if (t.get("message") or "").startswith("TestDidNot")]
            if did_not_report:
                parts.append("no result from " + ", ".join(t["name"] for t in did_not_report)
                             + " (the test did not report a result: its code was blocked or changed by an earlier "
                               "cell)")
            never = [t for t in not_run if t not in did_not_report]
            if never:
                parts.append("not run: " + ", ".join(t["name"] for t in never))
        parts += result.get("events") or []
    if result.get("restored"):
        changed = result["restored"]
        parts.append("a student cell had changed " + ", ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")
                     + " (put back before each test)")
    parts += result.get("notes") or []
    text = "; ".join(p for p in parts if p)
    return text if len(text) <= 600 else text[:597] + "..."


def _first_line(message) -> str:
    line = (message or "failed").strip().splitlines()[0] if (message or "").strip() else "failed"
    return line if len(line) <= 90 else line[:87] + "..."


def write_csv(course: Course, lab: str) -> Path:
    by_student = scores(course, lab)
    rows = []
    for student in course.students(lab):
        record = course.record(student, lab)
        if not record:
            continue
        score, max_score, manual = by_student.get(student, (record.get("score", 0), record.get("max_score"), False))
        text = record.get("reason", "")
        if manual:
            text = "includes manual grades; " + text
        if record.get("sha256") != course.submission(student, lab).get("sha256"):
            text = "a newer submission is waiting to be graded; " + text
        rows.append({"student": student, "lab": lab, "score": number(score), "max_score": number(max_score),
                     "status": record.get("status"), "reason": text})
    path = course.grades_csv(lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    if not path.exists() or path.read_text() != buffer.getvalue():
        path.write_text(buffer.getvalue())
    return path


# ---------------------------------------------------------------------------- the command

def resolve_mode(requested: str, limits: Limits, say) -> str:
    """'full' if the sandbox works here, else 'none' (with a loud warning) unless 'full' was required."""
    if requested in ("off", "none"):
        say("sandbox: OFF (--sandbox off): submissions run with your rights, with resource limits only")
        return "none"
    result = probe("full", limits)
    if result.get("ok"):
        say(f"sandbox: {describe(result)}")
        return "full"
    message = f"the sandbox does not work here: {describe(result)}"
    if requested == "full":
        raise SystemExit(message + "\n(use --sandbox auto to grade without it, resource limits only)")
    say(f"WARNING: {message}\nWARNING: grading WITHOUT the sandbox: student code runs with your rights "
        "(resource limits only); every result says NOT SANDBOXED")
    return "none"


def grade(lab: str, course: Course | None = None, workers: int = 1, force: bool = False,
          limits: Limits | None = None, sandbox: str = "auto", limit: int | None = None,
          max_bytes: int | None = None, retry: bool = True, cluster: str | None = None, say=print) -> dict:
    """Grade every collected submission of ``lab``; return {student: record} of the submissions graded now.
    ``limits`` and ``max_bytes`` default to the course settings' [limits].  ``cluster`` (default: the
    settings' [grading] cluster): a Dask scheduler's address; each submission is graded there
    (autograder/cluster.py) instead of on ``workers`` local processes."""
    use_tool_path()
    warnings.filterwarnings("ignore", module="nbgrader")  # nbgrader's own SQLAlchemy session warnings
    course = course or Course()
    limits = limits or Limits.from_settings(course.settings)
    max_bytes = max_bytes or int(course.settings.max_size_mb * 2**20)
    course.check_lab(lab)
    cluster = cluster or course.settings.cluster
    if cluster:
        from autograder.cluster import connect, run_jobs_on_cluster

        connect(address=cluster).close()  # fails now, saying what to install or check, not after the setup
    students = course.students(lab)
    if not students:
        raise SystemExit(f"no submissions of {lab} in {course.root / 'submitted'}: run "
                         f"`python -m autograder collect {lab} SOURCE` first")
    mode = resolve_mode(sandbox, limits, say)
    template = prepare_template(course, lab)
    add_to_gradebook(course, lab, template)
    print_ = fingerprint(course, lab, limits, mode)

    def stale(student):
        record = course.record(student, lab)
        if force or not record:
            return True
        return record.get("sha256") != course.submission(student, lab).get("sha256") or \
            record.get("fingerprint") != print_
    pending = [s for s in students if stale(s)]
    skipped = len(students) - len(pending)
    if limit is not None:
        pending = pending[:limit]
    say(f"{lab}: {len(students)} submission(s); {len(pending)} to grade "
        + (f"on the Dask cluster at {cluster}" if cluster else f"with {workers} worker(s)")
        + (f", {skipped} already graded (unchanged; --force to grade again)" if skipped else ""))

    jobs_dir = course.state / "jobs" / lab
    log_dir = course.state / "logs"
    graded = {}
    counter = {"n": 0, "retried": 0}  # first runs and second runs, counted apart
    again = []

    def job_for(student):
        return {"lab": lab, "student": student, "submission_dir": str(course.submitted(student, lab)),
                "template": str(template), "job_dir": str(jobs_dir / student), "limits": limits.to_json(),
                "mode": mode, "max_bytes": max_bytes}

    def on_result(job, result, retried=False):
        merging = time.time()
        result["reason"] = reason(result)
        result.setdefault("max_score", None)
        merge(course, lab, result)
        if isinstance(result.get("phases"), dict):  # the parent's own phase: the gradebook merge
            result["phases"]["merge"] = round(time.time() - merging, 3)
        record = {k: v for k, v in result.items() if k not in ("autograded", "parts")}
        if len(result.get("parts") or []) > 1:
            record["parts"] = [{k: v for k, v in part.items() if k not in ("autograded", "error_detail")}
                               for part in result["parts"]]
        record.update(fingerprint=print_, limits=limits.to_json(),  # the report shows run times against them
                      graded_at=datetime.now(UTC).isoformat(timespec="seconds"),
                      sha256=result.get("sha256") or course.submission(job["student"], lab).get("sha256"))
        if retried:
            record["reason"] = record["reason"] + " (graded a second time, alone)"
        course.save_record(job["student"], lab, record)
        if result.get("error_detail"):
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / f"{lab}-{job['student']}.log").write_text(result["error_detail"])
        shutil.rmtree(job["job_dir"], ignore_errors=True)
        graded[job["student"]] = record
        key = "retried" if retried else "n"
        counter[key] += 1
        where = f"again {counter['retried']}/{len(again)}" if retried else f"{counter['n']}/{len(pending)}"
        say(f"[{where}] {job['student']}: {number(result.get('score', 0))}/"
            f"{number(result.get('max_score'))} {result['status']} ({result.get('wall_seconds', 0):.0f} s)")

    if not pending:
        write_csv(course, lab)
        return graded
    def run_all(students, handle, alone=False):
        """Grade ``students`` here on ``workers`` processes or on the cluster; ``alone``: one at a time."""
        jobs = [job_for(s) for s in students]
        if cluster:
            run_jobs_on_cluster(jobs, cluster, log_dir, handle, say, alone=alone)
        else:
            run_jobs(jobs, 1 if alone else workers, log_dir, handle)

    try:
        run_all(pending, on_result)
        again[:] = [s for s, r in graded.items() if r["status"] in ("crashed", "error")]
        if retry and (workers > 1 or cluster) and again:  # rule out interference from a submission alongside
            say(f"grading {len(again)} crashed submission(s) again, alone: {', '.join(again)}")
            run_all(again, lambda job, result: on_result(job, result, retried=True), alone=True)
    except KeyboardInterrupt:
        left = len(pending) - counter["n"]
        write_csv(course, lab)
        raise SystemExit(f"interrupted: {counter['n']} graded, {left} left; run the same command again to resume") \
            from None
    path = write_csv(course, lab)
    counts = {status: sum(r["status"] == status for r in graded.values()) for status in STATUSES}
    say(f"{lab}: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n))
    for status, n in counts.items():
        if n and status != "graded":
            say(f"  {status}: {STATUSES[status]}")
    say(f"wrote {path} and the gradebook {course.db_shown}")
    return graded

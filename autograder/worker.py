"""A grading worker: `python -m autograder.worker`, started by `python -m autograder grade`.

It reads one job per line (JSON) on stdin and answers one result per line
(JSON) on its own copy of stdout.  For each job it checks the file, sets up a
private nbgrader course folder for that one submission (a copy of the lab's
gradebook, the submission, the lab's extra files), runs nbgrader's Autograde
there with the sandboxed preprocessors, and reports the scores nbgrader saved,
each test's outcome and message, and what went wrong.  It never writes the
course's gradebook: the parent does, from these results.

The kernel's own output streams go to a log file, never to the worker's stdout.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

import nbformat

from autograder import use_tool_path
from autograder.isolation import Limits, SandboxDir, config, write_config
from autograder.preprocessors import RUNS, Run
from autograder.vocabulary import error_result, hidden_lines, is_answer, kind_of, plain, visible

# ---------------------------------------------------------------------------- the checks before running

def read_submission(path: Path, meta: dict, max_bytes: int):
    """(notebook, None) or (None, why it cannot be graded)."""
    max_bytes = min(max_bytes, meta.get("max_bytes") or max_bytes)  # the limit collect applied, if smaller
    limit = f"{max_bytes / 2**20:g} MB"
    if meta.get("too_large") or (path.exists() and path.stat().st_size > max_bytes):
        size = meta.get("size", path.stat().st_size if path.exists() else 0)
        return None, f"file too large to be a notebook ({size / 2**20:.1f} MB; the limit is {limit})"
    if not path.exists():
        return None, "no notebook was collected for this submission"
    raw = path.read_bytes()
    if not raw.strip():
        return None, "the file is empty"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "not a notebook: the file is not text (UTF-8)"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not a notebook: the file is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("worksheets")), list):
        return None, "not a notebook: JSON without a list of cells"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any reason is a reason to refuse it
        return None, f"not a notebook nbformat can read: {exc}"[:300]
    if not isinstance(nb.get("metadata"), dict):
        nb["metadata"] = nbformat.NotebookNode()
    if not isinstance(nb.metadata.get("kernelspec", {}), dict):
        del nb.metadata["kernelspec"]
    for i, cell in enumerate(nb.cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw") \
                or not isinstance(cell.get("source", ""), str):
            return None, f"not a valid notebook: cell {i + 1} is malformed"
        if not isinstance(cell.get("metadata", {}), dict):
            cell["metadata"] = nbformat.NotebookNode()
        meta = cell.metadata.get("nbgrader")
        if meta is not None and (not isinstance(meta, dict) or not isinstance(meta.get("grade_id"), str)):
            del cell.metadata["nbgrader"]  # broken grading metadata: the lab's is put back by grade id anyway
    return nb, None


def compare(nb, source: dict) -> tuple:
    """Notes on how the submission differs from the lab's structure, and whether any answer cell is there."""
    notes = []
    ids = [cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in nb.cells]
    for name, cell in source["cells"].items():
        copies = [c for c, i in zip(nb.cells, ids, strict=True) if i == name]
        kind = cell["kind"] or "locked"
        if not copies:
            notes.append(f"{kind} cell '{name}' was missing" + (": nbgrader put it back" if kind != "answer" else ""))
            continue
        if len(copies) > 1:
            notes.append(f"cell '{name}' appears {len(copies)} times: only the last copy was graded")
        last = copies[-1]
        meta = last.metadata.get("nbgrader", {})
        if bool(meta.get("grade")) != cell["graded"] or bool(meta.get("solution")) != \
                (kind == "answer"):
            notes.append(f"{kind} cell '{name}' had its grading metadata changed: the lab's was used")
        if last.cell_type != cell["cell_type"]:
            notes.append(f"{kind} cell '{name}' was changed to {last.cell_type}: nbgrader changed it back")
        elif cell["locked"] and last.source.strip() not in (visible(cell["source"]).strip(), cell["source"].strip()):
            notes.append(f"{kind} cell '{name}' was edited: the original was run")
    spec, wanted = nb.metadata.get("kernelspec", {}), source.get("kernelspec") or {}
    if spec and wanted and spec.get("name") != wanted.get("name"):
        notes.append(f"kernel '{spec.get('display_name') or spec.get('name')}' replaced by "
                     f"'{wanted.get('display_name') or wanted.get('name')}'")
    if "colab" in nb.metadata:
        notes.append("saved from Google Colab")
    if any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"):
        notes.append("outputs saved in the file were discarded: the notebook was run again")
    answers = [n for n, c in source["cells"].items() if c["kind"] == "answer"]
    found = any(n in ids for n in answers)
    if answers and not found:
        notes.insert(0, "none of this lab's answer cells are in the notebook: is it the right lab?")
    return notes, found


def source_structure(gradebook_url: str, lab: str, notebook: str | None = None) -> dict:
    """The cells of one of the lab's notebooks (default: the one named as the lab) as nbgrader stored them
    in the (template) gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url) as gb:
        cells_of = gb.find_notebook(notebook or lab, lab)
        grade = {c.name: c.max_score for c in cells_of.grade_cells}
        solution = {c.name for c in cells_of.solution_cells}
        task = {c.name: c.max_score for c in cells_of.task_cells}
        cells = {c.name: {"cell_type": c.cell_type, "locked": c.locked, "source": c.source,
                          "kind": kind_of(c.cell_type, c.name in grade, c.name in solution, c.locked, c.name in task),
                          "graded": c.name in grade, "points": grade.get(c.name, task.get(c.name, 0))}
                 for c in cells_of.source_cells}
        return {"cells": cells, "kernelspec": json.loads(cells_of.kernelspec) if cells_of.kernelspec else None}


# ---------------------------------------------------------------------------- nbgrader, configured

def grading_steps(limits: Limits):
    """nbgrader autograde's preprocessors and limits as the kit grades (the worker's and the course folder's
    `nbgrader autograde`, autograder/nbgrader_course.py), without any course folder or sandbox."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
        SaveAutoGrades,
    )
    from traitlets.config import Config

    from autograder.preprocessors import ProtectTests, RestoreCellMetadata, RestoreTests, SandboxedExecute

    c = Config()
    c.Autograde.create_student = True
    c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, RestoreCellMetadata, OverwriteKernelspec,
                                          OverwriteCells, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [ProtectTests, SandboxedExecute, RestoreTests, IgnorePattern,
                                           ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
                                           AssignLatePenalties, CheckCellMetadata]
    c.OverwriteCells.add_missing_cells = True
    c.SandboxedExecute.timeout = limits.cell_timeout
    c.SandboxedExecute.notebook_timeout = limits.notebook_timeout
    c.SandboxedExecute.interrupt_grace = limits.interrupt_grace
    c.SandboxedExecute.output_bytes = limits.output_mb * 2**20
    c.SandboxedExecute.notebook_output_bytes = limits.notebook_output_mb * 2**20
    c.SandboxedExecute.startup_timeout = 120
    c.LimitedKernelClient.max_message_bytes = limits.message_mb * 2**20
    return c


def autograde_config(course_dir: Path, lab: str, student: str, sandbox_config: Path, limits: Limits,
                     notebook: str = "*"):
    """The grading steps, in the worker's private course folder for one submission, its kernel sandboxed."""
    c = grading_steps(limits)
    c.CourseDirectory.root = str(course_dir)
    c.CourseDirectory.source_directory = "source"
    c.CourseDirectory.submitted_directory = "submitted"
    c.CourseDirectory.autograded_directory = "autograded"
    c.CourseDirectory.db_url = f"sqlite:///{course_dir / 'gradebook.db'}"
    c.CourseDirectory.assignment_id = lab
    c.CourseDirectory.student_id = student
    c.CourseDirectory.notebook_id = notebook
    c.Autograde.force = True
    c.SandboxKernelManager.sandbox_config = str(sandbox_config)
    return c


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage()[:8000])


def run_nbgrader(course_dir, lab, student, sandbox_config, limits, notebook="*") -> list:
    """nbgrader autograde of one submission (one of its notebooks); the warnings and errors it logged."""
    from nbgrader.converters import Autograde
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory

    cfg = autograde_config(course_dir, lab, student, sandbox_config, limits, notebook)
    log = logging.getLogger("autograder.nbgrader")
    log.propagate = False
    capture = _Capture()
    log.handlers = [capture]
    log.setLevel(logging.WARNING)
    app = Autograde(coursedir=CourseDirectory(config=cfg), config=cfg, log=log)
    try:
        app.start()
    except NbGraderException as exc:
        capture.lines.append(f"nbgrader failed: {exc}")
    return capture.lines


# ---------------------------------------------------------------------------- one job

def grade_one(job: dict) -> dict:
    """Grade one student's submission of a lab: each of the lab's notebooks in its own sandboxed run.

    The result is the submission's (score and maximum summed, the worst status); with several
    notebooks, ``parts`` holds each notebook's own result (a lab of one notebook has one part)."""
    lab, student = job["lab"], job["student"]
    submitted = Path(job["submission_dir"])
    meta = json.loads((submitted / "submission.json").read_text())
    template = Path(job["template"])
    notebooks = lab_notebooks(f"sqlite:///{template / 'gradebook.db'}", lab)
    files = meta.get("notebooks") or {notebooks[0]: meta}  # written before labs had several notebooks: one file
    parts = []
    for notebook in notebooks:
        if notebook in files:
            part = grade_notebook(job, notebook, files[notebook])
        else:
            part = _not_handed_in(job, notebook)
        parts.append(part)
    if len(parts) == 1:
        return {**parts[0], "parts": parts}
    combined = combine(student, lab, meta, parts, job["mode"])
    combined["phases"] = {}
    for part in parts:
        for name, seconds in (part.get("phases") or {}).items():
            combined["phases"][name] = round(combined["phases"].get(name, 0) + seconds, 3)
    return combined


def lab_notebooks(gradebook_url: str, lab: str) -> list:
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url) as gb:
        return sorted(n.name for n in gb.find_assignment(lab).notebooks)


SEVERITY = ["error", "crashed", "timeout", "review", "graded", "invalid"]  # the first that a part has wins


def combine(student: str, lab: str, meta: dict, parts: list, mode: str) -> dict:
    """The submission of a lab of several notebooks: one result, each notebook's in ``parts``."""
    handed_in = [p for p in parts if p["status"] != "invalid"] or parts
    status = min((p["status"] for p in handed_in), key=SEVERITY.index)
    return {"student": student, "lab": lab, "sha256": meta.get("sha256"), "timestamp": meta.get("timestamp"),
            "file": meta.get("file"), "sandbox": mode, "status": status,
            "score": sum(p.get("score") or 0 for p in parts), "max_score": sum(p.get("max_score") or 0 for p in parts),
            "tests": [dict(t, notebook=p["notebook"]) for p in parts for t in p.get("tests") or []],
            "seconds": round(sum(p.get("seconds") or 0 for p in parts), 1), "parts": parts,
            **({"error_detail": "\n\n".join(p["error_detail"] for p in parts if p.get("error_detail"))}
               if any(p.get("error_detail") for p in parts) else {})}


def zero_grades(source: dict) -> dict:
    """Every cell with points at 0, as nbgrader's gradebook takes them: {grade id: [0, points]}."""
    return {n: [0, c["points"]] for n, c in source["cells"].items() if c["points"]}


def _not_handed_in(job: dict, notebook: str) -> dict:
    source = source_structure(f"sqlite:///{Path(job['template']) / 'gradebook.db'}", job["lab"], notebook)
    return {"student": job["student"], "lab": job["lab"], "notebook": notebook, "status": "invalid", "score": 0,
            "max_score": sum(c["points"] for c in source["cells"].values()), "grades": zero_grades(source),
            "tests": [], "notes": [], "reason": f"{notebook}.ipynb was not handed in"}


def grade_notebook(job: dict, notebook: str, meta: dict) -> dict:
    """One notebook of a submission, autograded by nbgrader in a private course folder, its kernel sandboxed."""
    clock = Phases()
    lab, student = job["lab"], job["student"]
    limits = Limits.from_json(job["limits"])
    submitted = Path(job["submission_dir"])
    result = {"student": student, "lab": lab, "notebook": notebook, "sha256": meta.get("sha256"),
              "timestamp": meta.get("timestamp"), "file": meta.get("file"), "grades": {}, "tests": [], "notes": [],
              "sandbox": job["mode"], "phases": clock.seconds}
    template = Path(job["template"])
    source = source_structure(f"sqlite:///{template / 'gradebook.db'}", lab, notebook)
    result["max_score"] = sum(c["points"] for c in source["cells"].values())
    nb, problem = read_submission(submitted / f"{notebook}.ipynb", meta, job["max_bytes"])
    if problem:
        result.update(status="invalid", score=0, reason=problem)
        result["grades"] = zero_grades(source)
        clock.lap("checks")
        return result
    result["notes"], _ = compare(nb, source)
    clock.lap("checks")

    job_dir = Path(job["job_dir"]) / notebook
    shutil.rmtree(job_dir, ignore_errors=True)
    course_dir = job_dir / "course"
    (course_dir / "source").mkdir(parents=True)
    shutil.copytree(template / "source" / lab, course_dir / "source" / lab,
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    shutil.copy(template / "gradebook.db", course_dir / "gradebook.db")
    sub_dir = course_dir / "submitted" / student / lab
    sub_dir.mkdir(parents=True)
    nbformat.write(nb, sub_dir / f"{notebook}.ipynb")
    if meta.get("timestamp"):
        (sub_dir / "timestamp.txt").write_text(meta["timestamp"])
    clock.lap("course_folder")

    sandbox = SandboxDir(job["slot"], job["mode"])
    try:
        shutil.copytree(course_dir / "source" / lab, sandbox.home, dirs_exist_ok=True)
        nbformat.write(nb, sandbox.home / f"{notebook}.ipynb")
        _copy_matplotlib_cache(sandbox.home / ".config" / "matplotlib")
        cfg = config(sandbox, limits, job["mode"], report=job_dir / "sandbox-report.json",
                     stderr=job_dir / "kernel.log")
        sandbox_config = write_config(sandbox, cfg)
        sandbox.hand_over()
        RUNS.clear()
        clock.lap("sandbox_setup")
        log = run_nbgrader(course_dir, lab, student, sandbox_config, limits, notebook)
        clock.lap("nbgrader")
    finally:
        sandbox.remove()
    run = RUNS.get((lab, student), Run())
    report = _read_report(job_dir / "sandbox-report.json")
    clock.lap("sandbox_cleanup")
    clock.split("nbgrader", run.marks, report)
    result.update(_results(course_dir, lab, notebook, student, source, run, report, log, job_dir))
    clock.lap("results")
    result["phases"] = clock.seconds
    result["phase_details"] = clock.details
    result["cells"] = run.cells[:200]
    return result


class Phases:
    """Where one notebook's grading time goes, measured on the worker: seconds per phase, in order.

    checks (the file read and compared with the lab), course_folder (nbgrader's private course folder: the
    lab's files, a copy of its gradebook, the submission), sandbox_setup (the scratch folder and the sandbox's
    config), nbgrader_before (nbgrader's Autograde up to the execution: its gradebook entries, the sanitizing
    preprocessors), kernel_start (the sandbox launcher, bubblewrap and the kernel, until its first reply;
    details["kernel_start.launch"]: the part before the launcher ran), harness (the harness in the kernel: it imports
    torch, numpy and labkit), notebook (the notebook's own cells), kernel_stop, nbgrader_after (the
    preprocessors after the execution: the scores into the gradebook, the autograded notebook written),
    sandbox_cleanup, results (the scores and outputs read back)."""

    def __init__(self):
        self.seconds = {}
        self.spans = {}
        self.details = {}  # parts of a phase, not counted again: kernel_start.launch
        self._last = time.time()

    def lap(self, name: str) -> None:
        """The time since the previous lap (or the start) goes to ``name``."""
        now = time.time()
        self.seconds[name] = round(self.seconds.get(name, 0) + now - self._last, 3)
        self.spans[name] = (self._last, now)
        self._last = now

    def split(self, name: str, marks: dict, report: dict) -> None:
        """Split phase ``name`` (nbgrader's run) at the execution's marks (``preprocessors.Run.marks``, wall
        clock) and the sandbox launcher's start (its report's ``started``)."""
        if name not in self.spans:
            return
        start, end = self.spans[name]
        parts, previous, missing = {}, start, None
        for mark, phase in (("execute", "nbgrader_before"), ("kernel_ready", "kernel_start"),
                            ("harness_done", "harness"), ("cells_done", "notebook"), ("kernel_stopped", "kernel_stop")):
            if start <= marks.get(mark, -1) <= end:
                # a step that never ended (a kernel that did not start, a client that failed) keeps the time up
                # to the next mark, not the step after it
                parts[missing or phase] = round(marks[mark] - previous, 3)
                previous, missing = marks[mark], None
            elif missing is None and parts:
                missing = phase
        parts["nbgrader_after"] = round(end - previous, 3)
        if "execute" in marks and "kernel_ready" in marks and \
                marks["execute"] <= report.get("started", -1) <= marks["kernel_ready"]:
            self.details["kernel_start.launch"] = round(report["started"] - marks["execute"], 3)
        order = list(self.seconds)
        at = order.index(name)
        self.seconds = {**{k: self.seconds[k] for k in order[:at]}, **parts,
                        **{k: self.seconds[k] for k in order[at + 1:]}}


def _copy_matplotlib_cache(target: Path):
    """matplotlib's font list, so that each kernel does not rebuild it (seconds) in its empty home."""
    try:
        import matplotlib

        target.mkdir(parents=True, exist_ok=True)
        for path in Path(matplotlib.get_cachedir()).glob("fontlist-*.json"):
            shutil.copy(path, target / path.name)
    except Exception:  # noqa: BLE001 - an optimisation only
        pass


def _read_report(path: Path) -> dict:
    for _ in range(50):  # the launcher writes it when the kernel's tree has ended
        if path.exists():
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:
                pass
        time.sleep(0.05)
    return {}


def _message(cell) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = plain(output.get("evalue", "")).strip()
            return f"{output.get('ename', 'Error')}: {value}" if value else str(output.get("ename", "Error"))
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return "the test wrote to stderr (nbgrader counts that as a failure): " + \
                plain(output.get("text", "")).strip()[:300]
    return None


def _results(course_dir, lab, notebook, student, source, run: Run, report: dict, log: list, job_dir: Path) -> dict:
    from nbgrader.api import Gradebook, MissingEntry

    out = {"events": [], "restored": list(run.restored), "seconds": round(run.seconds, 1)}
    grades = {}
    try:
        with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
            for grade in gb.find_submission_notebook(notebook, lab, student).grades:
                grades[grade.name] = [grade.auto_score, grade.max_score]
    except MissingEntry:
        pass
    out["grades"] = grades
    graded_path = course_dir / "autograded" / student / lab / f"{notebook}.ipynb"
    cells = {}
    if graded_path.exists():
        out["autograded"] = str(graded_path)
        graded = nbformat.read(graded_path, as_version=4)
        for cell in graded.cells:
            name = cell.metadata.get("nbgrader", {}).get("grade_id")
            if name:
                cells[name] = cell
    tests = []
    for name, info in source["cells"].items():
        if info["kind"] != "test":
            continue
        score, points = grades.get(name, [0, info["points"]])
        outcome = run.tests.get(name, {}).get("outcome", {})
        message = _message(cells[name]) if name in cells else "the test cell was not in the graded notebook"
        hidden = hidden_lines(info["source"])
        tests.append({"name": name, "points": points, "score": score or 0,
                      "passed": bool(score) and score == points, "message": message, "has_hidden": bool(hidden),
                      "failed_in_hidden": bool(hidden) and outcome.get("line") in hidden})
    out["tests"] = tests
    out["score"] = sum(s for s, _ in grades.values() if s)

    events = out["events"]
    if graded_path.exists():
        raised = []
        for cell in graded.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or not is_answer(cell):
                continue
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and output.get("ename") not in (
                        "TimeLimit", "NotRun", "KernelDied", "KeyboardInterrupt"):  # the grader's own doing
                    raised.append(f"answer '{meta.get('grade_id')}' raised {output.get('ename')}")
                    break
        if raised:
            events.append(", ".join(raised[:3]) + (" ..." if len(raised) > 3 else ""))
    for where in run.timeouts:
        events.append(f"{where} hit the time limit and was interrupted")
    if run.stopped:
        crash = ""
        if run.crashed:
            if report.get("memory_cap_hit"):
                crash = " (the memory cap of its process tree was reached)"
            elif report.get("signal"):
                crash = f" (killed by {report['signal']})"
            elif report.get("exit_code") not in (None, 0):
                crash = f" (exit code {report['exit_code']})"
        events.append(f"later cells not run: {run.stopped}{crash}")
    if run.truncated:
        events.append(f"output truncated in {', '.join(run.truncated[:3])}")
    if report.get("isolation") == "none":
        events.append("NOT SANDBOXED")
    for warning in report.get("warnings") or []:
        if warning != "not sandboxed":
            events.append(f"sandbox: {warning}")

    reported = any(run.tests.get(t["name"], {}).get("outcome", {}).get("reported") for t in tests)
    if not graded_path.exists() or (run.kernel_error and not reported):
        out["status"] = "error"
        exceptions = [line for entry in log for line in entry.splitlines()
                      if re.match(r"^[A-Za-z_.]*(Error|Exception|Exit)\b", line.strip())]
        why = run.kernel_error or (exceptions[-1].strip() if exceptions else "nbgrader produced no graded notebook")
        kernel_log = (job_dir / "kernel.log").read_text(errors="replace")[-1500:] if \
            (job_dir / "kernel.log").exists() else ""
        out["error_detail"] = "\n".join([why, *log[-20:], kernel_log])[-8000:]
        out["events"] = [f"the grader could not run this notebook: {why}"[:300]]
    elif run.crashed:
        out["status"] = "crashed"
    elif run.timeouts or (run.stopped and "time limit" in run.stopped):
        out["status"] = "timeout"
    elif run.restored:
        out["status"] = "review"
    else:
        out["status"] = "graded"
    return out


def _preload():
    """What every job imports (nbgrader's Autograde and preprocessors, the sandboxed execution, matplotlib for
    its font cache), imported once when the worker starts rather than inside its first job."""
    try:
        import matplotlib  # noqa: F401
        import nbgrader.converters  # noqa: F401
        import nbgrader.preprocessors  # noqa: F401

        import autograder.preprocessors  # noqa: F401
    except Exception:  # noqa: BLE001 - an optimisation only: the job imports them itself
        pass


def add_worker_phases(result: dict, job: dict, ready: float | None, started: float, ended: float) -> None:
    """The worker's own phases around the notebooks' (``Phases``): worker_start (the process's start and
    imports, before its first job only: from ``job["spawned"]``, when the parent started it) and
    worker_other (the rest of the job: the lab's notebooks looked up, several notebooks combined), so that
    the phases add up to the worker's time on the job."""
    phases = result.setdefault("phases", {})
    if ready is not None and job.get("spawned"):
        phases["worker_start"] = round(max(0.0, started - job["spawned"]), 3)
    counted = sum(v for k, v in phases.items() if k != "worker_start")
    phases["worker_other"] = round(max(0.0, ended - started - counted), 3)


def _set_parent_death_signal():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> int:
    _set_parent_death_signal()
    use_tool_path()
    warnings.filterwarnings("ignore", module="nbgrader")  # nbgrader's own SQLAlchemy session warnings
    protocol = os.fdopen(os.dup(1), "w", buffering=1)  # our answers; fd 1 now goes to the log
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _preload()
    ready = time.time()  # the interpreter and the imports are done: the first job may start
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        started = time.time()
        try:
            result = grade_one(job)
        except Exception:  # noqa: BLE001 - a grader bug must not stop the batch: report it
            result = error_result(job.get("student"), job.get("lab"), "the grader failed on this submission "
                                  "(see .autograder/logs)", traceback.format_exc()[-6000:])
            print(traceback.format_exc(), file=sys.stderr)
        add_worker_phases(result, job, ready, started, time.time())
        ready = None
        protocol.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

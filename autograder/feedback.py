"""`python -m autograder feedback LAB`: one HTML file per student, built with nbgrader's feedback step.

nbgrader's GenerateFeedback renders each autograded notebook with its scores;
``RedactForFeedback`` runs first and makes sure no hidden test leaks:

- a summary cell on top: score, status, and each test with its points, result and message;
- every test cell shows only its visible part (the part students had) and, instead of
  its outputs, its result: passed, failed with the check's message, or "failed a
  hidden test" (no message: the hidden part's own text is never shown);
- any line of a hidden test that appears anywhere else (a student's output can
  print what the kernel saw) is replaced by "[hidden test line removed]";
- outputs' HTML is sanitized (nbconvert's sanitize_html): a student's output cannot
  run scripts in the instructor's or the student's browser.

``--no-outputs`` leaves out the outputs of the student's own cells too.  Students
whose file could not be graded (invalid, or no graded notebook) get a
short page with the reason.
"""
from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Unicode

from autograder import use_tool_path
from autograder.course import Course
from autograder.vocabulary import HIDDEN, hidden_lines, number, plain, visible

REDACTED = "[hidden test line removed]"


def secret_lines(source_nb) -> set:
    """Lines of hidden tests that appear nowhere in what students were given (8+ characters)."""
    hidden, public = set(), set()
    for cell in source_nb.cells:
        lines = cell.source.splitlines()
        inside = hidden_lines(cell.source) if cell.cell_type == "code" else set()
        for at, line in enumerate(lines, 1):
            text = line.strip()
            if text in HIDDEN:
                continue
            (hidden if at in inside else public).add(text)
    return {line for line in hidden - public if len(line) >= 8}


def redact(text: str, secrets: set) -> str:
    if not secrets or not text:
        return text
    out = []
    for line in text.split("\n"):
        text = plain(line)
        out.append(REDACTED if any(secret in text for secret in secrets) else line)
    return "\n".join(out)


def _redact_output(output, secrets):
    if output.get("output_type") == "stream":
        output["text"] = redact(output.get("text", ""), secrets)
    elif output.get("output_type") == "error":
        output["evalue"] = redact(str(output.get("evalue", "")), secrets)
        output["traceback"] = [redact(line, secrets) for line in output.get("traceback", [])]
    else:
        for mime, value in list((output.get("data") or {}).items()):
            if isinstance(value, str) and mime.startswith("text/"):
                output["data"][mime] = redact(value, secrets)
            elif isinstance(value, (dict, list)) and "json" in mime:
                del output["data"][mime]


def result_text(test: dict) -> str:
    points = f"{number(test['score'], 0)}/{number(test['points'], 0)} points"
    if test["passed"]:
        return f"passed ({points})"
    message = (test.get("message") or "").strip()
    if message.startswith(("NotRun", "TestDidNotRun")):
        return f"not run ({points}): {message.split(':', 1)[-1].strip()}"
    if test.get("failed_in_hidden"):
        return f"failed a hidden test ({points})"
    return f"failed ({points})" + (f": {message}" if message else "")


def part_of(record: dict, notebook: str) -> dict:
    """The record of one notebook of a submission: a lab of several notebooks keeps each one's in "parts"."""
    for part in record.get("parts") or []:
        if part.get("notebook") == notebook:
            return {**part, "lab": f"{record['lab']}, {notebook}", "student": record["student"]}
    return record


class RedactForFeedback(NbGraderPreprocessor):
    """Summary on top, test cells reduced to their visible part and their result, hidden lines scrubbed.

    The grader's record of the submission and the lab's source come from ``course_root`` (its
    ``.autograder/records/<lab>/`` and its lab sources, as ``Course``), unless ``records_dir`` and
    ``source_notebook`` name them.  A submission graded by `nbgrader autograde` alone (no record)
    gets a summary from the gradebook, and no test messages where a test has hidden parts."""

    course_root = Unicode("", config=True, help="the course folder (default: as autograder.course.Course)")
    records_dir = Unicode("", config=True, help="the grader's records of this lab (default: from course_root)")
    source_notebook = Unicode("", config=True, help="the lab's source notebook (default: from course_root)")
    keep_outputs = Bool(True, config=True, help="show the outputs of the student's own cells (redacted)")

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        student, lab = info["student"], info["assignment"]
        course = Course(self.course_root or None)
        source_path = Path(self.source_notebook or course.source_dir(lab) / f"{info.get('notebook') or lab}.ipynb")
        source = nbformat.read(source_path, as_version=4)
        secrets = secret_lines(source)
        record_path = Path(self.records_dir or course.records(lab)) / f"{student}.json"
        record = part_of(json.loads(record_path.read_text()), info.get("notebook") or lab) if record_path.exists() \
            else record_from_gradebook(nb, source, info)
        tests = {t["name"]: t for t in record.get("tests", [])}
        for cell in nb.cells:
            name = cell.metadata.get("nbgrader", {}).get("grade_id")
            if name in tests:
                test = tests[name]
                cell.source = visible(cell.source).rstrip() + ("\n# (hidden tests run by the grader are not shown)"
                                                               if test.get("has_hidden") else "")
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=redact(result_text(test),
                                                                                             secrets) + "\n")]
            elif cell.cell_type == "code":
                if not self.keep_outputs:
                    cell.outputs = []
                for output in cell.get("outputs", []):
                    _redact_output(output, secrets)
            cell.source = redact(cell.source, secrets)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(summary_markdown(record, secrets)))
        return nb, resources


def record_from_gradebook(nb, source, info: dict) -> dict:
    """A summary record for a submission that `nbgrader autograde` graded without the kit's grader: the
    gradebook's scores; a failed test's message only where the test has no hidden part."""
    from nbgrader.api import Gradebook

    with Gradebook(info["db_url"]) as gb:
        graded = gb.find_submission_notebook(info.get("notebook") or info["assignment"], info["assignment"],
                                             info["student"])
        scores = {g.name: (g.score, g.max_score) for g in graded.grades}
        total, max_score = graded.score, graded.max_score
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    tests = []
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("grade_id") not in scores:
            continue
        name = meta["grade_id"]
        score, points = scores[name]
        hidden = bool(hidden_lines(cell.source))
        errors = [o for o in cells.get(name, {}).get("outputs", []) if o.get("output_type") == "error"]
        message = None if hidden or not errors else \
            f"{errors[0].get('ename', 'Error')}: {plain(str(errors[0].get('evalue', '')))}".strip().rstrip(":")
        tests.append({"name": name, "points": points, "score": score or 0, "passed": bool(points) and score == points,
                      "message": message, "has_hidden": hidden, "failed_in_hidden": False})
    return {"lab": info["assignment"], "student": info["student"], "score": total, "max_score": max_score,
            "status": "graded", "events": ["graded by nbgrader autograde"], "tests": tests}


def _md(text: str) -> str:
    return html.escape(str(text)).replace("|", "&#124;").replace("\n", "<br>")


def student_reason(record: dict) -> str:
    """What happened, for the student: the CSV's reason without its list of failed tests (whose messages
    may come from hidden tests); each test's result is in the table instead."""
    if record.get("status") == "invalid":
        return record.get("reason", "")
    parts = list(record.get("events") or [])
    if record.get("restored"):
        parts.append("a cell of yours had changed " + ", ".join(record["restored"][:4])
                     + "; it was put back before each test")
    parts += record.get("notes") or []
    return "; ".join(parts)


def summary_markdown(record: dict, secrets: set) -> str:
    lines = [f"## Feedback: {_md(record['lab'])}, {_md(record['student'])}",
             f"**Score: {number(record.get('score'), 0)} / {number(record.get('max_score'), 0)}** &nbsp; status: "
             f"*{_md(record.get('status'))}*", "",
             _md(redact(student_reason(record), secrets)), "", "| test | result |", "|:--|:--|"]
    for test in record.get("tests", []):
        lines.append(f"| {_md(test['name'])} | {_md(redact(result_text(test), secrets))} |")
    return "\n".join(lines)


def plain_page(record: dict) -> str:
    rows = "".join(f"<tr><td>{html.escape(t['name'])}</td><td>{html.escape(result_text(t))}</td></tr>"
                   for t in record.get("tests", []))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback {html.escape(record['lab'])}</title>"
            f"</head><body><h2>Feedback: {html.escape(record['lab'])}, {html.escape(record['student'])}</h2>"
            f"<p><b>Score: {number(record.get('score'), 0)} / {number(record.get('max_score'), 0)}</b>, status: "
            f"<i>{html.escape(str(record.get('status')))}</i></p><p>{html.escape(student_reason(record))}</p>"
            f"<table border='1'><tr><th>test</th><th>result</th></tr>{rows}</table></body></html>")


def feedback_config(outputs: bool = True):
    """nbgrader's GenerateFeedback as the kit runs it (here, and `nbgrader generate_feedback` in a course folder
    with the kit's nbgrader_config.py): the redaction first, outputs' HTML sanitized."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades
    from traitlets.config import Config

    c = Config()
    c.GenerateFeedback.preprocessors = [RedactForFeedback, GetGrades, CSSHTMLHeaderPreprocessor]
    c.RedactForFeedback.keep_outputs = outputs
    c.HTMLExporter.sanitize_html = True
    return c


def feedback(lab: str, course: Course | None = None, outputs: bool = True, say=print) -> list:
    """Write feedback/<student>/<lab>/<notebook>.html for every graded student and notebook; return the paths.

    ``outputs=False`` leaves out the outputs of the student's own cells (sources and test results only)."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    use_tool_path()
    course = course or Course()
    course.check_lab(lab)
    records = {s: course.record(s, lab) for s in course.students(lab)}
    records = {s: r for s, r in records.items() if r}
    if not records:
        raise SystemExit(f"no graded submissions of {lab}: run `python -m autograder grade {lab}` first")
    notebooks = course.notebooks(lab)
    with_notebook = [s for s in records if any((course.autograded(s, lab) / f"{n}.ipynb").exists()
                                               for n in notebooks)]  # a lab may have several notebooks
    if with_notebook:
        c = Config()
        c.CourseDirectory.root = str(course.root)
        c.CourseDirectory.autograded_directory = "autograded"
        c.CourseDirectory.feedback_directory = "feedback"
        c.CourseDirectory.db_url = course.db_url
        c.CourseDirectory.assignment_id = lab
        c.CourseDirectory.student_id = "*"
        c.GenerateFeedback.force = True
        c.merge(feedback_config(outputs))
        c.RedactForFeedback.course_root = str(course.root)
        log = logging.getLogger("autograder.feedback")
        log.setLevel(logging.CRITICAL)
        try:
            GenerateFeedback(coursedir=CourseDirectory(config=c), config=c, log=log).start()
        except NbGraderException as exc:
            say(f"nbgrader's feedback step failed for some students: {exc}")
    paths = []
    for student, record in sorted(records.items()):
        for notebook in notebooks:
            path = course.feedback(student, lab) / f"{notebook}.html"
            if not (course.autograded(student, lab) / f"{notebook}.ipynb").exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(plain_page(part_of(record, notebook) if len(notebooks) > 1 else record))
            if path.exists():
                paths.append(path)
            else:
                say(f"no feedback written for {student} ({notebook}.ipynb)")
    names = f"{notebooks[0]}.html" if len(notebooks) == 1 else "<notebook>.html"
    say(f"{lab}: feedback for {len({p.parent.parent.name for p in paths})} student(s) in "
        f"{course.root / 'feedback'}/<student>/{lab}/{names}")
    return paths

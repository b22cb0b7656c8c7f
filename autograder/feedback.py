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


class RedactForFeedback(NbGraderPreprocessor):
    """Summary on top, test cells reduced to their visible part and their result, hidden lines scrubbed."""

    records_dir = Unicode("", config=True)
    source_notebook = Unicode("", config=True)
    keep_outputs = Bool(True, config=True, help="show the outputs of the student's own cells (redacted)")

    def preprocess(self, nb, resources):
        student = resources["nbgrader"]["student"]
        record = json.loads((Path(self.records_dir) / f"{student}.json").read_text())
        source = nbformat.read(self.source_notebook, as_version=4)
        secrets = secret_lines(source)
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


def feedback(lab: str, course: Course | None = None, outputs: bool = True, say=print) -> list:
    """Write feedback/<student>/<lab>/<lab>.html for every graded student; return the paths.

    ``outputs=False`` leaves out the outputs of the student's own cells (sources and test results only)."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.converters import GenerateFeedback
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import GetGrades
    from traitlets.config import Config

    use_tool_path()
    course = course or Course()
    course.check_lab(lab)
    records = {s: course.record(s, lab) for s in course.students(lab)}
    records = {s: r for s, r in records.items() if r}
    if not records:
        raise SystemExit(f"no graded submissions of {lab}: run `python -m autograder grade {lab}` first")
    with_notebook = [s for s in records if (course.autograded(s, lab) / f"{lab}.ipynb").exists()]
    if with_notebook:
        c = Config()
        c.CourseDirectory.root = str(course.root)
        c.CourseDirectory.autograded_directory = "autograded"
        c.CourseDirectory.feedback_directory = "feedback"
        c.CourseDirectory.db_url = course.db_url
        c.CourseDirectory.assignment_id = lab
        c.GenerateFeedback.force = True
        c.GenerateFeedback.preprocessors = [RedactForFeedback, GetGrades, CSSHTMLHeaderPreprocessor]
        c.RedactForFeedback.records_dir = str(course.records(lab))
        c.RedactForFeedback.source_notebook = str(course.source_dir(lab) / f"{lab}.ipynb")
        c.RedactForFeedback.keep_outputs = outputs
        c.HTMLExporter.sanitize_html = True
        c.CourseDirectory.student_id = "*"
        log = logging.getLogger("autograder.feedback")
        log.setLevel(logging.CRITICAL)
        try:
            GenerateFeedback(coursedir=CourseDirectory(config=c), config=c, log=log).start()
        except NbGraderException as exc:
            say(f"nbgrader's feedback step failed for some students: {exc}")
    paths = []
    for student, record in sorted(records.items()):
        path = course.feedback(student, lab) / f"{lab}.html"
        if student not in with_notebook:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(plain_page(record))
        if path.exists():
            paths.append(path)
        else:
            say(f"no feedback written for {student}")
    say(f"{lab}: feedback for {len(paths)} student(s) in {course.root / 'feedback'}/<student>/{lab}/{lab}.html")
    return paths

"""The grader's words, defined once: markers, hidden tests, kinds of cells, statuses, results, scores.

Every part of the grader (the worker, the preprocessors, feedback, export, the release) and
the tests use these, so that "a test cell", "its visible part" or "status timeout" mean the
same thing everywhere.
"""
from __future__ import annotations

import re

# nbgrader's markers, the only ones the labs use (a marker is a whole line, indentation aside).
SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
MARKERS = (*SOLUTION, *HIDDEN)

# What a graded submission can end as; docs/grading.md explains each with these words.
STATUSES = {
    "graded": "ran to the end; the score is what the tests gave",
    "review": "graded, but a student cell had changed the checks or the test machinery (put back before the "
              "tests): have a look",
    "timeout": "a cell or the notebook hit its time limit; tests that ran count",
    "crashed": "the kernel died (exit, crash, memory or process cap); tests that ran before count",
    "invalid": "the file is not a gradable notebook; score 0",
    "error": "the grader could not run it (not the student's fault): see .autograder/logs and fix, then re-run",
}

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the colours of tracebacks


# ---------------------------------------------------------------------------- kinds of cells

def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def kind_of(cell_type: str, grade: bool, solution: bool, locked: bool = False, task: bool = False) -> str | None:
    """'test' (graded code, not an answer), 'answer' (a solution region to fill), 'task' (graded by hand),
    'locked' (read-only) or None, from nbgrader's flags."""
    if solution:
        return "answer"
    if grade and cell_type == "code":
        return "test"
    if task:
        return "task"
    return "locked" if locked else None


def kind(cell) -> str | None:
    meta = nbgrader_meta(cell)
    return kind_of(cell.get("cell_type"), bool(meta.get("grade")), bool(meta.get("solution")),
                   bool(meta.get("locked")), bool(meta.get("task")))


def is_test(cell) -> bool:
    return kind(cell) == "test"


def is_answer(cell) -> bool:
    return kind(cell) == "answer"


def label(cell, index: int) -> str:
    """How a cell is named in reasons and feedback: "cell 7 (answer 'mlp')"."""
    what, name = kind(cell), grade_id(cell)
    return f"cell {index + 1}" + (f" ({what} '{name}')" if what in ("test", "answer") and name else "")


# ---------------------------------------------------------------------------- hidden tests and regions

def hidden_lines(source: str) -> set:
    """Line numbers (from 1) inside the hidden-test regions of a test's source."""
    lines, inside = set(), False
    for number, line in enumerate(source.splitlines(), 1):
        if line.strip() == HIDDEN[0]:
            inside = True
        elif line.strip() == HIDDEN[1]:
            inside = False
        if inside:
            lines.add(number)
    return lines


def visible(source: str) -> str:
    """A test's source as students see it: without its hidden-test regions (nbgrader's ClearHiddenTests)."""
    hidden = hidden_lines(source)
    return "\n".join(line for number, line in enumerate(source.splitlines(), 1)
                     if number not in hidden and line.strip() != HIDDEN[1])


def regions(source: str) -> tuple:
    """(the texts of the cell's solution and hidden-test regions, the rest of the cell), markers left out."""
    inside, outside, current, depth = [], [], [], 0
    for line in source.splitlines():
        text = line.strip()
        if text in (SOLUTION[0], HIDDEN[0]):
            depth += 1
        elif text in (SOLUTION[1], HIDDEN[1]):
            depth = max(0, depth - 1)
            if depth == 0:
                inside.append("\n".join(current))
                current = []
        else:
            (current if depth else outside).append(line)
    if current:  # a region that was never closed
        inside.append("\n".join(current))
    return inside, "\n".join(outside)


def without_markers(source: str) -> str:
    """The cell with its solution written out: the marker lines dropped, everything else kept."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in MARKERS)


# ---------------------------------------------------------------------------- results

def plain(text) -> str:
    """Text without terminal colour codes."""
    return ANSI.sub("", str(text))


def number(value, missing=""):
    """A score as the CSV, the feedback and the LMS show it: 3, 2.5 (``missing`` for None)."""
    if value is None:
        return missing
    value = round(float(value), 2)
    return int(value) if value == int(value) else value


def error_result(student: str | None, lab: str | None, event: str, detail: str | None = None) -> dict:
    """The result of a submission the grader could not grade (never the student's fault: status 'error')."""
    result = {"student": student, "lab": lab, "status": "error", "score": 0, "grades": {}, "tests": [], "notes": [],
              "events": [event]}
    if detail:
        result["error_detail"] = detail
    return result

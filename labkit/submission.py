"""Check before you hand in: which graded tests of a lab pass, in JupyterLab, Colab or any IPython.

Each lab's setup cell calls ``watch_tests()``.  From then on, every graded test cell
that runs (its first line is ``# graded test: <id>, <n> points``) is noted: passed,
or failed with its error.  The lab's last cell calls ``check_lab(lab, tests, submit_as)``,
which lists every graded test of the lab as passed, failed (and why) or not run yet,
with the points, and the file name to hand in.

nbgrader's Validate button does the same by running the whole notebook again; Colab
has no such button.  Here nothing runs again: the check reports what this kernel ran.
So restart the kernel and run every cell before you read it, as the autograder runs
the notebook from the top, with hidden tests besides: a test that passes here can
still lose points there.
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, replace

__all__ = ["LabCheck", "TestOutcome", "check_lab", "watch_tests"]

# The first line of a graded test cell, written by the release (autograder/stamp.py).
TEST_LINE = re.compile(r"# graded test: (?P<id>\S+), (?P<points>[\d.]+) points?")

_outcomes: dict = {}  # grade id -> TestOutcome of its latest run in this kernel


@dataclass(frozen=True)
class TestOutcome:
    """How one graded test went: ``status`` is "passed", "failed" or "not run"."""

    grade_id: str
    points: float
    status: str = "not run"
    message: str = ""
    run: int = 0  # the cell's execution count when it last ran (0: never)


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _message(error) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _note(result) -> None:
    """IPython's post_run_cell event: note the outcome of a graded test cell."""
    info = getattr(result, "info", None)
    source = (getattr(info, "raw_cell", None) or "").lstrip("\n")
    match = TEST_LINE.fullmatch(source.split("\n", 1)[0].strip())
    if not match:
        return
    error = result.error_before_exec or result.error_in_exec
    _outcomes[match["id"]] = TestOutcome(match["id"], float(match["points"]), "failed" if error else "passed",
                                         _message(error) if error else "", result.execution_count or 0)


def watch_tests() -> bool:
    """Note every graded test cell that runs from now on (once per kernel; calling it again does nothing).

    Returns False outside IPython, where there are no cells to watch."""
    shell = _shell()
    if shell is None:
        return False
    if _note not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _note)
    return True


def _watching() -> bool:
    shell = _shell()
    return shell is not None and _note in shell.events.callbacks["post_run_cell"]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _points(value: float) -> str:
    return f"{_number(value)} point" + ("" if value == 1 else "s")


@dataclass(frozen=True)
class LabCheck:
    """The result of ``check_lab``: shown as a table in the notebook."""

    lab: str
    outcomes: tuple
    submit_as: str | None = None
    watching: bool = True
    graded_by_nbgrader: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def in_order(self) -> bool:
        """Whether the tests that ran last ran in notebook order (as a "run all" does)."""
        runs = [o.run for o in self.outcomes if o.run]
        return runs == sorted(runs)

    def notes(self) -> list:
        if self.graded_by_nbgrader:
            return ["nbgrader ran this notebook: the scores are in the grades and the feedback, not here."]
        out = []
        if not self.watching:
            out.append("labkit was not watching the tests: run the setup cell at the top first (or run all cells).")
        elif not self.in_order:
            out.append("Some tests ran out of order or again later: restart the kernel and run all cells to see "
                       "what the autograder will see.")
        if self.count("not run"):
            out.append("Tests that did not run score 0: run all cells.")
        out.append("The autograder runs these tests again, with hidden tests: a test that passes here can still "
                   "lose points there.")
        if self.submit_as:
            out.append(f"Hand in this notebook as {self.submit_as}.")
        return out

    def summary(self) -> str:
        if self.graded_by_nbgrader:
            return f"{self.lab}: graded by nbgrader"
        total = sum(o.points for o in self.outcomes)
        passed = sum(o.points for o in self.outcomes if o.status == "passed")
        return (f"{self.lab}: {self.count('passed')} of {len(self.outcomes)} graded tests pass in this kernel "
                f"({_number(passed)} of {_points(total)}); "
                f"{self.count('failed')} failed, {self.count('not run')} not run")

    def __repr__(self) -> str:
        lines = [self.summary()]
        if not self.graded_by_nbgrader:
            width = max((len(o.grade_id) for o in self.outcomes), default=0)
            for o in self.outcomes:
                status = "FAILED" if o.status == "failed" else o.status
                lines.append(f"  {status:<8} {o.grade_id:<{width}}  {_points(o.points):<10} {o.message}".rstrip())
        return "\n".join(lines + self.notes())

    def _repr_html_(self) -> str:
        marks = {"passed": "&#10004; passed", "failed": "&#10008; <b>failed</b>", "not run": "not run"}
        rows = "" if self.graded_by_nbgrader else "".join(
            f"<tr><td>{marks[o.status]}</td><td><code>{html.escape(o.grade_id)}</code></td>"
            f"<td>{_points(o.points)}</td><td>{html.escape(o.message)}</td></tr>" for o in self.outcomes)
        table = (f"<table><thead><tr><th>result</th><th>test</th><th>points</th><th>message</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table>") if rows else ""
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in self.notes())
        return f"<p><b>{html.escape(self.summary())}</b></p>{table}<ul>{notes}</ul>"


def check_lab(lab: str, tests: dict, submit_as: str | None = None) -> LabCheck:
    """How each graded test of ``lab`` went in this kernel.

    ``tests`` maps each graded test's id to its points, in notebook order (the lab's last
    cell lists them); ``submit_as`` is the file name to hand in.  Never raises on the
    student's account: it reports.
    """
    if os.environ.get("NBGRADER_EXECUTION"):  # autograde or validate: nbgrader itself reports the tests
        return LabCheck(lab, (), submit_as, graded_by_nbgrader=True)
    outcomes = tuple(replace(_outcomes.get(grade_id, TestOutcome(grade_id, 0.0)), points=float(points))
                     for grade_id, points in tests.items())
    return LabCheck(lab, outcomes, submit_as, watching=_watching())

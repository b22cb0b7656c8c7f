"""`python -m autograder report [LAB ...]`: what the class got wrong, as self-contained HTML pages.

After ``grade``, one page per lab (``<course>/reports/<lab>.html``) and, without a LAB, one for the
course (``reports/course.html``, linking each lab's page). Each page is one file that opens offline:
inline CSS and JavaScript, plots as PNG ``data:`` URIs, and a Content-Security-Policy that lets the
page load nothing else. A lab's page has:

- the scores: a histogram, the mean, the median, the share at full marks; how many submissions are
  in each of the grader's statuses (``autograder.vocabulary.STATUSES``), late (the LMS said so at
  ``collect``), missing (on the LMS roster, nothing collected), not graded yet, or waiting for a newer
  file to be graded;
- each graded test: how many submissions passed it, the points lost in all, and its failures grouped
  by message (``normalise``: the same check failing the same way is one group), each group with its
  count and one example of the message a student saw, with every student id and name scrubbed out.
  A failure inside a hidden test is one group "failed a hidden test" and shows no message, as
  feedback does; any line of a hidden test is redacted from every message (``feedback.redact``);
- the grader's run time per submission (a histogram, median and maximum, against the limits it graded
  with, which ``grade`` records; course.toml's for records written before it did);
- the submissions that need a person: status review, timeout, crashed, invalid or error, cells
  waiting for a manual grade in the gradebook, or a newer file waiting to be graded; each with a
  relative link to its autograded notebook and its feedback page (when ``feedback`` wrote one).

Tables sort when their header is clicked and start sorted by what matters most (most points lost,
largest group, worst status). ``--anonymous`` writes ``<lab>-anonymous.html`` (and
``course-anonymous.html``): students are "student 1".."student N" (numbered in the order of a hash
of their id, the same number on every page of the course), no link names a student's folder, and
every id and name from the roster is scrubbed from every message.

The scores are the CSV's (``grades/<lab>.csv``: manual grades included); the tests, messages and
times are the grader's records (``.autograder/records/<lab>/``).
"""
from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import os
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import nbformat

from autograder.course import Course
from autograder.feedback import redact, secret_lines, student_reason
from autograder.grade import per_submission
from autograder.vocabulary import STATUSES, number, plain

REPORTS = "reports"
HIDDEN_FAILURE = "failed a hidden test (its message is never shown)"
NO_MESSAGE = "failed (no message)"
EXAMPLE_CHARS = 600
# The order in which submissions that need a person are listed: the first is the most urgent.
ATTENTION = ["error", "crashed", "timeout", "review", "invalid", "part", "manual", "newer"]
ATTENTION_WHY = {**STATUSES, "part": "one of its notebooks was not handed in, or is not a gradable notebook",
                 "manual": "cells wait for a manual grade in the gradebook (nbgrader's formgrader)",
                 "newer": "a newer submission was collected after this one was graded: run grade again"}


# ---------------------------------------------------------------------------- grouping messages

ANSI_LEFTOVERS = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@+~<>-]+){2,}[\\/]?")
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w])")
SPACE = re.compile(r"\s+")


def normalise(message: str) -> str:
    """The group key of a failure message: the same mistake, whoever made it, gives the same key.

    Terminal colours are dropped; memory addresses (``0x7f3a...``) become ``<address>``; file paths of two
    parts or more (``/home/s123/answers.txt``) ``<path>``; every number that stands alone (``got 0.1234``,
    ``-1000``, ``1e-05``, ``[64, 784]``) ``<n>``, but digits inside a word stay (``float32``,
    ``log_softmax2``); runs of white space become one space.  Student ids and names were scrubbed before
    (``Scrubber``), so they never split a group."""
    text = ANSI_LEFTOVERS.sub("", plain(message)).strip()
    text = ADDRESS.sub("<address>", text)
    text = PATH.sub("<path>", text)
    text = NUMBER.sub("<n>", text)
    return SPACE.sub(" ", text)


class Scrubber:
    """Replaces student ids and the roster's names (whole words only) in any text."""

    def __init__(self, words: dict):
        """``words``: {text to hide: what to show instead}; words shorter than 3 characters are left alone
        (they would match everywhere)."""
        self.words = {w: r for w, r in words.items() if w and len(w) >= 3}
        alternatives = sorted(self.words, key=len, reverse=True)
        self.pattern = re.compile(r"(?<![^\W_])(" + "|".join(re.escape(w) for w in alternatives) + r")(?![^\W_])") \
            if alternatives else None

    def __call__(self, text: str) -> str:
        if not self.pattern or not text:
            return text
        return self.pattern.sub(lambda m: self.words[m.group(1)], text)


# ---------------------------------------------------------------------------- what the grader left

@dataclass
class Entry:
    """One student's submission of a lab, as the report sees it."""
    student: str
    shown: str  # the student as the page names them: the id (and name), or "student 7"
    status: str
    score: float
    max_score: float
    record: dict
    late: bool = False
    newer: bool = False
    manual: int = 0  # cells waiting for a manual grade
    links: list = field(default_factory=list)  # (text, relative href or None, note)

    @property
    def attention(self) -> list:
        """Why a person should look at it, most urgent first (empty: nothing to look at)."""
        why = [self.status] if self.status in ATTENTION else []
        part = self.status != "invalid" and any(p.get("status") == "invalid" for p in self.record.get("parts") or [])
        return why + (["part"] if part else []) + (["manual"] if self.manual else []) + \
            (["newer"] if self.newer else [])


@dataclass
class Failure:
    key: str
    count: int
    example: str
    points_lost: float


@dataclass
class TestSummary:
    name: str
    points: float
    ran: int
    passed: int
    points_lost: float
    failures: list  # of Failure, the largest group first

    @property
    def pass_rate(self) -> float:
        return self.passed / self.ran if self.ran else 0.0


@dataclass
class LabData:
    lab: str
    entries: list
    tests: list
    missing: list  # students of the roster without a submission (None: no roster to tell)
    not_graded: list  # collected, never graded
    roster: str | None  # where the missing list comes from
    scrub: Scrubber  # the ids and names of this lab's students and roster -> "<student>"
    secrets: set  # the lines of the lab's hidden tests (feedback.secret_lines), out of any text
    anonymous: Scrubber | None = None  # with --anonymous: the ids and names -> each student's label

    def clean(self, text: str) -> str:
        """A message that stands for a group, as the page shows it: ids and names as "<student>", hidden
        lines redacted."""
        return redact(self.scrub(text), self.secrets)

    def about(self, text: str) -> str:
        """What happened to one submission, as its row shows it: hidden lines redacted and, with --anonymous,
        ids and names as the students' labels."""
        return redact(self.anonymous(text) if self.anonymous else text, self.secrets)


def read_csv(path: Path) -> dict:
    with open(path, newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def _float(value, default=0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def is_late(meta: dict) -> bool:
    """The LMS marked the submission (any of its notebooks) late when it was collected."""
    parts = list((meta.get("notebooks") or {}).values()) or [meta]
    return any((part.get("lms") or {}).get("late") for part in [meta, *parts])


def roster_people(course: Course, lab: str) -> tuple:
    """({student: {column: value}} of the LMS roster the course keeps, the roster's file) or ({}, None)."""
    from autograder.lms import LMS_NAMES, Roster

    for lms in LMS_NAMES:
        roster = Roster(course, lms)
        if not roster.known:
            continue
        people = roster.data["students"]
        if lms == "moodle":  # Moodle's worksheets are per assignment: this lab's participants only
            ids = set((roster.data["participants"].get(lab) or {}).values())
            if not ids:
                continue
            people = {s: p for s, p in people.items() if s in ids}
        return people, roster.source(lab)
    return {}, None


def manual_waiting(course: Course, lab: str) -> dict:
    """{student: number of cells} whose grade is still to be given by hand in nbgrader's gradebook."""
    waiting = per_submission(course, lab, lambda submission: sum(
        1 for notebook in submission.notebooks for g in notebook.grades
        if g.max_score and g.auto_score is None and g.manual_score is None))
    return {student: n for student, n in waiting.items() if n}


def labels(course: Course) -> dict:
    """{student: "student N"}: every student of the course, numbered in the order of a hash of the id (not
    of the id itself, which would tell the order of the ids), the same on every page."""
    everyone = set()
    base = course.root / "submitted"
    if base.is_dir():
        everyone |= {p.name for p in base.iterdir() if p.is_dir()}
    for lab in course.labs():
        everyone |= set(roster_people(course, lab)[0])
    ordered = sorted(everyone, key=lambda s: (hashlib.sha256(s.encode()).hexdigest(), s))
    return {student: f"student {n}" for n, student in enumerate(ordered, 1)}


def scrubber_for(course: Course, lab: str, students: list, shown) -> Scrubber:
    """Every id and name of the lab's students and roster (and the parts of each name), replaced by
    ``shown(student)``."""
    people, _ = roster_people(course, lab)
    words = {}
    for student in sorted(set(students) | set(people)):
        person = dict(people.get(student) or {})
        person.pop("Section", None)
        meta = course.submission(student, lab) if (course.submitted(student, lab) / "submission.json").exists() \
            else {}
        lms = meta.get("lms") or {}
        person.update({"person": lms.get("person", ""), "name": lms.get("name", "")})
        for value in person.values():
            value = str(value or "").strip()
            if value:
                words[value] = shown(student)
                for part in re.split(r"[\s,]+", value):  # "Lovelace, Ada": "Lovelace" and "Ada" alone too
                    words.setdefault(part, shown(student))
        words[student] = shown(student)
    return Scrubber(words)


def load(course: Course, lab: str, anonymous: bool = False, label: dict | None = None) -> LabData:
    """The lab's graded submissions, tests and failures; SystemExit saying what to run when it is not graded."""
    course.check_lab(lab)
    students = course.students(lab)
    if not students:
        raise SystemExit(f"no submissions of {lab} in {course.root / 'submitted'}: nothing to report. Run "
                         f"`python -m autograder collect {lab} SOURCE`, then `python -m autograder grade {lab}`")
    path = course.grades_csv(lab)
    records = {s: course.record(s, lab) for s in students}
    graded = {s: r for s, r in records.items() if r}
    if not path.exists() or not graded:
        raise SystemExit(f"{lab} is not graded yet (expected {path} and the grader's records in "
                         f"{course.records(lab)}): run `python -m autograder grade {lab}` (or `make grade LAB={lab}`) "
                         "first, then the report")
    rows = read_csv(path)
    label = label if label is not None else labels(course)
    people, roster_file = roster_people(course, lab)
    scrub = scrubber_for(course, lab, students, lambda _: "<student>")
    secrets = set()
    for notebook in course.notebooks(lab):
        secrets |= secret_lines(nbformat.read(course.source_dir(lab) / f"{notebook}.ipynb", as_version=4))
    manual = manual_waiting(course, lab)
    entries = []
    for student, record in sorted(graded.items()):
        row = rows.get(student, {})
        meta = course.submission(student, lab)
        name = (meta.get("lms") or {}).get("person") or ""
        shown = label.get(student, "a student") if anonymous else (f"{student} ({name})" if name and
                                                                   name != student else student)
        entry = Entry(student=student, shown=shown, status=row.get("status") or record.get("status", "error"),
                      score=_float(row.get("score"), _float(record.get("score"))),
                      max_score=_float(row.get("max_score"), _float(record.get("max_score"))), record=record,
                      late=is_late(meta), newer=record.get("sha256") != meta.get("sha256"),
                      manual=manual.get(student, 0))
        entries.append(entry)
    data = LabData(lab=lab, entries=entries, tests=[], missing=sorted(set(people) - set(students)) if roster_file
                   else None, not_graded=sorted(set(students) - set(graded)), roster=roster_file, scrub=scrub,
                   secrets=secrets, anonymous=scrubber_for(course, lab, students, lambda s: label.get(s, "a student"))
                   if anonymous else None)
    data.tests = summarise_tests(entries, data.clean, several=len(course.notebooks(lab)) > 1)
    return data


def failure_text(test: dict) -> str:
    """What a student was told about a failed test, as feedback tells it (a hidden test's message never)."""
    if test.get("failed_in_hidden"):
        return HIDDEN_FAILURE
    return plain(test.get("message") or "").strip() or NO_MESSAGE


def summarise_tests(entries: list, clean, several: bool = False) -> list:
    """Per graded test (in the lab's order): how many ran it and passed, the points lost, the failures grouped by
    ``normalise`` of the message as ``clean`` (ids scrubbed, hidden lines redacted) leaves it."""
    order, by_test = [], {}
    for entry in entries:
        for test in entry.record.get("tests") or []:
            name = f"{test['notebook']}: {test['name']}" if several and test.get("notebook") else test["name"]
            if name not in by_test:
                order.append(name)
                by_test[name] = []
            by_test[name].append(test)
    summaries = []
    for name in order:
        results = by_test[name]
        groups, examples, lost = Counter(), {}, Counter()
        for test in results:
            if test.get("passed"):
                continue
            text = clean(failure_text(test))
            key = text if text in (HIDDEN_FAILURE, NO_MESSAGE) else normalise(text)
            groups[key] += 1
            lost[key] += _float(test.get("points")) - _float(test.get("score"))
            examples.setdefault(key, text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS - 3] + "...")
        failures = [Failure(key, n, examples[key], lost[key]) for key, n in groups.items()]
        failures.sort(key=lambda f: (-f.count, -f.points_lost, f.key))
        points = max(_float(t.get("points")) for t in results)
        summaries.append(TestSummary(name=name, points=points, ran=len(results),
                                     passed=sum(bool(t.get("passed")) for t in results),
                                     points_lost=sum(_float(t.get("points")) - _float(t.get("score"))
                                                     for t in results), failures=failures))
    summaries.sort(key=lambda s: (-s.points_lost, s.pass_rate, order.index(s.name)))
    return summaries


# ---------------------------------------------------------------------------- numbers

def score_stats(entries: list) -> dict:
    scores = [e.score for e in entries]
    full = [e for e in entries if e.max_score and e.score >= e.max_score]
    return {"n": len(entries), "mean": statistics.fmean(scores) if scores else 0.0,
            "median": statistics.median(scores) if scores else 0.0, "max_score": max((e.max_score for e in entries),
                                                                                     default=0.0),
            "full": len(full), "full_share": len(full) / len(entries) if entries else 0.0}


def status_counts(data: LabData) -> list:
    """[(what, count, meaning)]: every status of the grader, then late, missing, not graded, newer file."""
    counts = Counter(e.status for e in data.entries)
    out = [(status, counts.get(status, 0), meaning) for status, meaning in STATUSES.items()]
    out += [(status, n, "a status this version of the grader does not know") for status, n in counts.items()
            if status not in STATUSES]
    out.append(("late", sum(e.late for e in data.entries), "the LMS marked the submission late (at collect)"))
    if data.missing is None:
        out.append(("missing", None, "unknown: no LMS roster in the course folder (collect --lms canvas|moodle "
                                     "--roster ... keeps one)"))
    else:
        out.append(("missing", len(data.missing), f"on the roster ({Path(data.roster).name}), nothing collected"))
    out.append(("not graded yet", len(data.not_graded), "collected but never graded: run grade"))
    out.append(("newer file waiting", sum(e.newer for e in data.entries),
                "collected again after grading: run grade again"))
    return out


def grading_limits(entries: list, settings) -> tuple:
    """(seconds per cell, seconds per notebook, where they come from): the limits most submissions were graded
    with (the grader records them), else course.toml's."""
    used = Counter((e.record["limits"].get("cell_timeout"), e.record["limits"].get("notebook_timeout"))
                   for e in entries if isinstance(e.record.get("limits"), dict))
    if used:
        (cell, notebook), _ = used.most_common(1)[0]
        return cell, notebook, "of this grading run"
    return settings.cell_timeout, settings.notebook_timeout, "of course.toml"


def run_times(entries: list) -> dict:
    wall = [float(e.record["wall_seconds"]) for e in entries if e.record.get("wall_seconds") is not None]
    run = [float(e.record["seconds"]) for e in entries if e.record.get("seconds") is not None]

    def stats(values):
        return {"n": len(values), "median": statistics.median(values) if values else None,
                "max": max(values) if values else None}
    slowest = sorted((e for e in entries if e.record.get("wall_seconds") is not None),
                     key=lambda e: -float(e.record["wall_seconds"]))[:5]
    return {"wall": wall, "run": run, "wall_stats": stats(wall), "run_stats": stats(run), "slowest": slowest}


# ---------------------------------------------------------------------------- plots (matplotlib, Agg)

def png(fig) -> str:
    """The figure as a data: URI (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def score_histogram(entries: list, stats: dict) -> str:
    import numpy as np
    from matplotlib.figure import Figure

    scores = [e.score for e in entries]
    top = stats["max_score"] or max(scores, default=1) or 1
    bins = np.arange(-0.5, top + 1.5, 1.0) if top <= 60 else np.linspace(0, top, 21)
    fig = Figure(figsize=(6.4, 3.0))
    ax = fig.add_subplot()
    ax.hist(scores, bins=bins, color="#4a78b5", edgecolor="white")
    ax.axvline(stats["mean"], color="#d1495b", linestyle="--", label=f"mean {stats['mean']:.2f}")
    ax.axvline(stats["median"], color="#2e8b57", linestyle=":", label=f"median {number(stats['median'])}")
    ax.set_xlabel(f"score (of {number(top)})")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(frameon=False)
    fig.tight_layout()
    return png(fig)


def time_histogram(times: dict, notebook_timeout) -> str | None:
    from matplotlib.figure import Figure

    if not times["wall"]:
        return None
    fig = Figure(figsize=(6.4, 3.0))
    ax = fig.add_subplot()
    ax.hist(times["wall"], bins=min(20, max(5, len(times["wall"]))), color="#8a6fb5", edgecolor="white")
    ax.axvline(times["wall_stats"]["median"], color="#2e8b57", linestyle=":",
               label=f"median {times['wall_stats']['median']:.1f} s")
    if notebook_timeout and times["wall_stats"]["max"] >= 0.5 * float(notebook_timeout):
        ax.axvline(float(notebook_timeout), color="#d1495b", label=f"notebook limit {float(notebook_timeout):g} s")
    ax.set_xlabel("seconds per submission (the grader's wall clock)")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(frameon=False)
    fig.tight_layout()
    return png(fig)


def course_plot(summaries: list) -> str | None:
    from matplotlib.figure import Figure

    shown = [s for s in summaries if s["percent"]]
    if not shown:
        return None
    fig = Figure(figsize=(6.4, 3.0))
    ax = fig.add_subplot()
    ax.boxplot([s["percent"] for s in shown], tick_labels=[s["lab"] for s in shown])
    ax.set_ylabel("score (% of the maximum)")
    ax.set_ylim(-5, 105)
    fig.tight_layout()
    return png(fig)


# ---------------------------------------------------------------------------- the page

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:72em;
padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;width:100%}th,td{border:1px solid #ddd;padding:.3em .5em;
text-align:left;vertical-align:top}th{background:#f2f4f8;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}td:first-child{min-width:7em}pre{margin:0;white-space:pre-wrap;font-size:.9em}
.note{color:#555}.zero{color:#999}.stats span{display:inline-block;margin-right:1.5em}
img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}
"""

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.querySelectorAll('thead th');
  heads.forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var numeric = th.dataset.type === 'number';
      var direction = th.getAttribute('aria-sort') === 'descending' ? 1 : -1;
      if (!th.hasAttribute('aria-sort')) { direction = numeric ? -1 : 1; }
      function value(row) {
        var cell = row.cells[column];
        var text = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
        return numeric ? parseFloat(text) : text.toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = value(a), y = value(b);
        if (!numeric) { return direction * x.localeCompare(y, undefined, {numeric: true}); }
        x = isNaN(x) ? -Infinity : x; y = isNaN(y) ? -Infinity : y;
        return x < y ? -direction : x > y ? direction : 0;
      });
      heads.forEach(function (other) { other.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', direction === 1 ? 'ascending' : 'descending');
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def table(headers: list, rows: list, caption: str = "", sort: dict | None = None) -> str:
    """A sortable table. ``headers``: [(title, kind)], kind "number" (sorted as numbers, aligned right),
    "rank" (sorted as numbers, aligned left) or "text"; ``rows``: lists of cells, each a str (escaped here) or
    (html, sort key) for cells built by hand."""
    head = "".join(f"<th data-type='{'text' if kind == 'text' else 'number'}' scope='col'"
                   + (f" aria-sort='{sort[title]}'" if sort and title in sort else "") + f">{esc(title)}</th>"
                   for title, kind in headers)
    body = []
    for row in rows:
        cells = []
        for (_, kind), cell in zip(headers, row, strict=True):
            css = " class='num'" if kind == "number" else ""
            if isinstance(cell, tuple):
                cells.append(f"<td{css} data-sort='{esc(cell[1])}'>{cell[0]}</td>")
            else:
                cells.append(f"<td{css}>{esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption class='note'>{esc(caption)}</caption>" if caption else ""
    return f"<table class='sortable'>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>{body}<script>{SORT_JS}</script></body></html>\n")


def percent(x: float) -> str:
    return f"{100 * x:.0f} %"


def link(course: Course, out_dir: Path, entry: Entry, lab: str, anonymous: bool) -> str:
    """Links to the autograded notebook(s) and feedback page(s) of a submission, relative to the page."""
    if anonymous:
        return "<span class='note'>links left out (--anonymous)</span>"
    notebooks = course.notebooks(lab)
    graded, feedback = [], []
    for notebook in notebooks:
        name = esc(f" ({notebook})" if len(notebooks) > 1 else "")
        path = course.autograded(entry.student, lab) / f"{notebook}.ipynb"
        graded.append(f"<a href='{esc(relative(path, out_dir))}'>autograded notebook{name}</a>" if path.exists()
                      else f"<span class='note'>no autograded notebook{name}</span>")
        path = course.feedback(entry.student, lab) / f"{notebook}.html"
        feedback.append(f"<a href='{esc(relative(path, out_dir))}'>feedback{name}</a>" if path.exists() else
                        f"<span class='note'>no feedback{name}</span>")
    if not any(part.startswith("<a ") for part in feedback):
        feedback = [f"<span class='note'>no feedback yet: run <code>python -m autograder feedback {esc(lab)}</code>"
                    "</span>"]
    return " &middot; ".join(graded + feedback)


def relative(target: Path, out_dir: Path) -> str:
    """The link from a page in ``out_dir`` to ``target``: a relative URL (a space or any other character of a
    name percent-encoded)."""
    return quote(Path(os.path.relpath(target, out_dir)).as_posix())


def lab_page(course: Course, data: LabData, out_dir: Path, anonymous: bool) -> str:
    lab, entries = data.lab, data.entries
    stats = score_stats(entries)
    settings = course.settings
    times = run_times(entries)
    parts = [f"<h1>Class report: {esc(lab)}</h1>",
             f"<p class='note'>{esc(settings.name)}, {esc(settings.term)}: {stats['n']} graded submission(s)"
             + (" &middot; anonymous: students are numbered, ids and names removed" if anonymous else "")
             + "</p>"]

    parts.append("<h2 id='scores'>Scores</h2>")
    parts.append(f"<p class='stats'><span>mean <b>{stats['mean']:.2f}</b></span><span>median "
                 f"<b>{esc(number(stats['median']))}</b></span><span>full marks ({esc(number(stats['max_score']))}) "
                 f"<b>{stats['full']} of {stats['n']}</b> ({percent(stats['full_share'])})</span></p>")
    parts.append(f"<img alt='histogram of the scores' src='{score_histogram(entries, stats)}'>")
    rows = []
    for what, n, meaning in status_counts(data):
        rows.append([what, ("?" if n is None else str(n), -1 if n is None else n), meaning])
    parts.append(table([("what", "text"), ("submissions", "number"), ("meaning", "text")], rows,
                       "the grader's statuses (docs/grading.md), then what collect and the roster tell"))
    if data.missing and not anonymous:
        people, _ = roster_people(course, lab)

        def who(student):
            person = people.get(student) or {}
            name = person.get("Student") or person.get("Full name") or ""
            return f"{student} ({name})" if name else student
        parts.append("<p class='note'>missing: " + esc(", ".join(who(s) for s in data.missing)) + "</p>")

    parts.append("<h2 id='tests'>Tests: where the points were lost</h2>")
    parts.append("<p class='note'>Over the submissions that have a result for the test (an invalid file or a "
                 "grader error has none). Failures are grouped by their message with numbers, addresses, paths "
                 "and student ids taken out; a failure in a hidden test shows no message.</p>")
    rows = []
    for test in data.tests:
        top = test.failures[0] if test.failures else None
        rows.append([f"{test.name}", (esc(number(test.points)), test.points), str(test.ran),
                     (f"{test.passed} ({percent(test.pass_rate)})", test.pass_rate),
                     (esc(number(test.points_lost)), test.points_lost), (str(len(test.failures)), len(test.failures)),
                     (f"<a href='#test-{esc(slug(test.name))}'>{esc(short(top.example))}</a> ({top.count})"
                      if top else "<span class='zero'>none</span>", top.count if top else 0)])
    parts.append(table([("test", "text"), ("points", "number"), ("ran", "number"), ("passed", "number"),
                        ("points lost", "number"), ("kinds of failure", "number"), ("most common failure", "rank")],
                       rows, "sorted by points lost; click a header to sort by it",
                       sort={"points lost": "descending"}))
    for test in data.tests:
        if not test.failures:
            continue
        parts.append(f"<h3 id='test-{esc(slug(test.name))}'>{esc(test.name)}: {test.ran - test.passed} failure(s), "
                     f"{esc(number(test.points_lost))} point(s) lost</h3>")
        rows = [[(str(f.count), f.count), (percent(f.count / test.ran), f.count), (esc(number(f.points_lost)),
                 f.points_lost), (f"<pre>{esc(f.example)}</pre>", f.key)] for f in test.failures]
        parts.append(table([("submissions", "number"), ("share", "number"), ("points lost", "number"),
                            ("what a student saw (one example)", "text")], rows, sort={"submissions": "descending"}))

    parts.append("<h2 id='time'>Run time per submission</h2>")
    wall, run = times["wall_stats"], times["run_stats"]
    cell_limit, notebook_limit, limits_from = grading_limits(entries, settings)
    if wall["n"]:
        parts.append(f"<p class='stats'><span>grader's time: median <b>{wall['median']:.1f} s</b>, max "
                     f"<b>{wall['max']:.1f} s</b></span>"
                     + (f"<span>the notebook's own run: median {run['median']:.1f} s, max {run['max']:.1f} s</span>"
                        if run["n"] else "")
                     + f"<span>limits {limits_from}: {esc(cell_limit)} s per cell, {esc(notebook_limit)} s per "
                       "notebook</span></p>")
        if notebook_limit and wall["max"] >= 0.5 * float(notebook_limit):
            parts.append(f"<p><b>The slowest submission took {wall['max']:.0f} s, at least half the notebook limit "
                         f"({esc(notebook_limit)} s):</b> quick mode may be too slow for the grader; check the lab's "
                         "quick-mode settings, or the limits.</p>")
        parts.append(f"<img alt='histogram of the run times' src='{time_histogram(times, notebook_limit)}'>")
        rows = [[e.shown, e.status, (f"{float(e.record['wall_seconds']):.1f}", float(e.record["wall_seconds"]))]
                for e in times["slowest"]]
        parts.append(table([("slowest submissions", "text"), ("status", "text"), ("seconds", "number")], rows,
                           sort={"seconds": "descending"}))
    else:
        parts.append("<p class='note'>no run times recorded</p>")

    parts.append("<h2 id='attention'>Submissions that need a person</h2>")
    attention = sorted((e for e in entries if e.attention),
                       key=lambda e: (ATTENTION.index(e.attention[0]), natural(e.shown)))
    if attention:
        rows = []
        for e in attention:
            why = "; ".join(ATTENTION_WHY.get(a, a) for a in e.attention)
            said = data.about(student_reason(e.record))
            detail = f"<b>{esc(', '.join(e.attention))}</b>: {esc(why)}" + (f"<br><span class='note'>{esc(said)}"
                                                                             "</span>" if said else "")
            rows.append([e.shown, (detail, ATTENTION.index(e.attention[0])),
                         (f"{esc(number(e.score))} / {esc(number(e.max_score))}", e.score),
                         (link(course, out_dir, e, lab, anonymous), e.shown)])
        parts.append(table([("student", "text"), ("why", "rank"), ("score", "number"), ("open", "text")], rows,
                           "most urgent first: error, crashed, timeout, review, invalid, a notebook missing, "
                           "manual grading, newer file",
                           sort={"why": "ascending"}))
    else:
        parts.append("<p>none: every submission ran to the end and nothing waits for a grade by hand</p>")
    parts.append(f"<p class='note'>Written by <code>python -m autograder report{' --anonymous' if anonymous else ''} "
                 f"{esc(lab)}</code> from {esc(course.grades_csv(lab).name)} and the grader's records.</p>")
    return page(f"Class report: {lab}", "".join(parts))


def natural(text: str) -> list:
    """A sort key that puts "student 9" before "student 10"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "test"


def short(text: str, limit: int = 90) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[:limit - 3] + "..."


# ---------------------------------------------------------------------------- the command

def out_path(course: Course, name: str, anonymous: bool, out: str | os.PathLike | None) -> Path:
    folder = Path(out) if out else course.root / REPORTS
    return folder / (f"{name}-anonymous.html" if anonymous else f"{name}.html")


def lab_report(lab: str, course: Course | None = None, anonymous: bool = False, out: str | os.PathLike | None = None,
               label: dict | None = None) -> tuple:
    """Write one lab's page; (its path, its LabData)."""
    course = course or Course()
    label = label if label is not None else labels(course)
    data = load(course, lab, anonymous, label)
    path = out_path(course, lab, anonymous, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = lab_page(course, data, path.parent, anonymous)
    tmp = path.with_suffix(".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path, data


def course_page(course: Course, done: dict, out_dir: Path, anonymous: bool) -> str:
    summaries, rows = [], []
    for lab, (path, data) in done.items():
        stats = score_stats(data.entries)
        counts = Counter(e.status for e in data.entries)
        times = run_times(data.entries)
        worst = data.tests[0] if data.tests else None
        percent_scores = [100 * e.score / e.max_score for e in data.entries if e.max_score]
        summaries.append({"lab": lab, "percent": percent_scores})
        attention = sum(bool(e.attention) for e in data.entries)
        rows.append([(f"<a href='{esc(relative(path, out_dir))}'>{esc(lab)}</a>", lab), str(stats["n"]),
                     (f"{stats['mean']:.2f} / {esc(number(stats['max_score']))}",
                      stats["mean"] / stats["max_score"] if stats["max_score"] else 0),
                     (esc(number(stats["median"])), stats["median"]),
                     (percent(stats["full_share"]), stats["full_share"]),
                     ", ".join(f"{n} {s}" for s, n in counts.most_common() if s != "graded") or "-",
                     (str(attention), attention),
                     (f"{times['wall_stats']['median']:.0f} / {times['wall_stats']['max']:.0f}"
                      if times["wall_stats"]["n"] else "-", times["wall_stats"]["max"] or 0),
                     (f"{esc(worst.name)} ({esc(number(worst.points_lost))} lost)" if worst else "-",
                      worst.points_lost if worst else 0)])
    settings = course.settings
    plot = course_plot(summaries)
    body = [f"<h1>Class report: {esc(settings.name)}, {esc(settings.term)}</h1>",
            f"<p class='note'>{len(done)} graded lab(s)" + (" &middot; anonymous" if anonymous else "") + "</p>",
            "<h2>Labs</h2>",
            table([("lab", "text"), ("submissions", "number"), ("mean", "number"), ("median", "number"),
                   ("full marks", "number"), ("not graded cleanly", "text"), ("need a person", "number"),
                   ("seconds, median / max", "number"), ("most points lost in", "rank")], rows,
                  "each lab's page has the details; click a header to sort")]
    if plot:
        body.append(f"<h2>Scores by lab</h2><img alt='the scores of each lab' src='{plot}'>")
    return page(f"Class report: {settings.name}", "".join(body))


def report(labs: list | None = None, course: Course | None = None, anonymous: bool = False,
           out: str | os.PathLike | None = None, say=print) -> list:
    """Write the pages of ``labs`` (each lab's; none named: every graded lab's and the course's); return the paths.
    SystemExit saying what to run when a named lab is unknown or not graded, or no lab is graded at all."""
    from autograder import use_tool_path

    use_tool_path()
    started = time.monotonic()
    course = course or Course()
    label = labels(course)
    paths = []
    if labs:
        for lab in labs:
            course.check_lab(lab)
        for lab in labs:
            begun = time.monotonic()
            path, data = lab_report(lab, course, anonymous, out, label)
            paths.append(path)
            say(f"{lab}: wrote {path} ({len(data.entries)} submission(s)) in {time.monotonic() - begun:.1f} s")
        return paths
    done = {}
    for lab in course.labs():
        if not course.grades_csv(lab).exists():
            continue
        begun = time.monotonic()
        try:
            done[lab] = lab_report(lab, course, anonymous, out, label)
        except SystemExit as exc:  # a lab with a CSV but nothing to report: say so, go on
            say(f"{lab}: {exc}")
            continue
        say(f"{lab}: wrote {done[lab][0]} ({len(done[lab][1].entries)} submission(s)) in "
            f"{time.monotonic() - begun:.1f} s")
    if not done:
        raise SystemExit(f"no lab of {course.root} is graded yet (no grades/<lab>.csv with records): run "
                         "`python -m autograder grade LAB` first, then the report")
    path = out_path(course, "course", anonymous, out)
    text = course_page(course, done, path.parent, anonymous)
    path.write_text(text, encoding="utf-8")
    paths = [p for p, _ in done.values()] + [path]
    say(f"wrote {path} (the course: {len(done)} lab(s)) in {time.monotonic() - started:.1f} s")
    return paths


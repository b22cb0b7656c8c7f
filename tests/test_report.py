"""The class report (`python -m autograder report`): what the class got wrong, on a graded class built in code.

A Canvas download of the tiny lab (tests/grading_corpus.py, 5 points: test_add 2, test_scale 2,
test_scale_allclose 1) with known mistakes is collected with its roster and graded once (2 workers,
one thread per kernel, the corpus's limits):

- 5 students whose ``add`` is off by 1..5 (the same mistake, a different "got" number each),
- 3 whose ``scale`` returns its input unchanged (two tests fail),
- 1 whose ``add`` fails a hidden check only,
- 2 whose ``add`` reads a file under a path holding their own student id,
- 2 infinite loops (timeout), 1 ``os._exit`` (crashed), 1 that replaces ``torch.allclose`` (review),
- 1 file that is not JSON (invalid), 2 right answers (one of them marked late by Canvas),
- and one student of the roster who handed nothing in (missing).

Every number of the report is then checked exactly, the page is opened in Debian's chromium
(no console error, no request leaving the page, sorting by a header), and ``--anonymous`` must
leave no student id or name anywhere in the file.
"""
from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import zipfile
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from grading_corpus import CORPUS_LIMITS, LAB, quiet, source_notebook, student_notebook, tiny_course
from lab_server import chromium

from autograder import ROOT, tool_env
from autograder.collect import collect
from autograder.feedback import feedback, secret_lines
from autograder.grade import grade
from autograder.report import HIDDEN_FAILURE, load, normalise, report

T0 = datetime(2025, 3, 3, 9, 0, 0)

# (kind, how many): the class.  Canvas user ids are the kit's student ids: long, so that no other number of the
# page (nor the base64 of its images) can contain one by chance.
CLASS = [("off-by", 5), ("scale-noop", 3), ("hidden-only", 1), ("own-path", 2), ("timeout", 2), ("crash", 1),
         ("patched", 1), ("not-json", 1), ("correct", 2)]
SURNAMES = ["Abernathy", "Brightwater", "Cottingham", "Dunmore", "Eversleigh", "Fairweather", "Greythorne",
            "Hollingsworth", "Ironside", "Jellicoe", "Kettleburn", "Longbottom", "Merriweather", "Northcott",
            "Oakenshield", "Pemberton", "Quartermaine", "Rutherford", "Silverstone"]
GIVEN = ["Araminta", "Bartholomew", "Clementine", "Desmond", "Eglantine", "Fitzgerald", "Guinevere", "Horatio",
         "Isadora", "Jeremiah", "Katarina", "Leopold", "Millicent", "Nathaniel", "Ottoline", "Percival",
         "Rosalind", "Sebastian", "Theodora"]


def students() -> list:
    """[(student id, sortable name, kind, index within the kind)]: the class, and the missing one last."""
    out, n = [], 0
    for kind, count in CLASS:
        for i in range(count):
            out.append((str(731_590_101 + n), f"{SURNAMES[n]}, {GIVEN[n]}", kind, i))
            n += 1
    out.append((str(731_590_101 + n), f"{SURNAMES[n]}, {GIVEN[n]}", "missing", 0))
    return out


def submission(student: str, kind: str, i: int) -> bytes | None:
    """The notebook a student of ``kind`` hands in (None: nothing)."""
    if kind == "off-by":
        nb = student_notebook(add=f"return a + b + {i + 1}")
    elif kind == "scale-noop":
        nb = student_notebook(scale="return x")
    elif kind == "hidden-only":
        nb = student_notebook(add="return a + b if a >= 0 else -1")
    elif kind == "own-path":
        nb = student_notebook(add=f"return float(open('/home/{student}/answers/add.txt').read())")
    elif kind == "timeout":
        nb = student_notebook(extra={"add": "while True:\n    pass"})
    elif kind == "crash":
        nb = student_notebook(extra={"add": "import os\nos._exit(1)"})
    elif kind == "patched":
        nb = student_notebook(scale="wrong", extra={"scale": "import torch\ntorch.allclose = lambda *a, **k: True"})
    elif kind == "not-json":
        return b"this is not a notebook, it is a text file\n"
    elif kind == "correct":
        nb = student_notebook()
    else:
        return None
    return nbformat.writes(nb).encode()


def canvas_files() -> tuple:
    """(Canvas's gradebook export as CSV text, its Download Submissions as {file name: bytes})."""
    from autograder.lms import canvas_sanitized

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 7: Tiny (4101)"])
    writer.writerow(["    Points Possible", "", "", "", "", "5"])
    files = {}
    for n, (student, name, kind, i) in enumerate(students()):
        writer.writerow([name, student, f"sis{student}", f"login{student}", "Section A", ""])
        data = submission(student, kind, i)
        if data is not None:
            late = "late_" if kind == "correct" and i == 1 else ""
            files[f"{canvas_sanitized(name)}_{late}{student}_{40_001 + n}_{LAB}.ipynb"] = data
    return buffer.getvalue(), files


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, sandbox):
    """The class collected from Canvas and graded, once for the module."""
    root = tmp_path_factory.mktemp("report-course")
    course = tiny_course(root)
    roster_text, files = canvas_files()
    roster = root.parent / f"{root.name}-gradebook.csv"
    roster.write_text(roster_text, encoding="utf-8")
    download = root.parent / f"{root.name}-submissions.zip"
    with zipfile.ZipFile(download, "w") as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=T0.timetuple()[:6]), data)
    collect(LAB, download, course, roster=roster, lms="canvas", say=quiet)
    # retry=False: the crash is not graded a second time alone (it crashes alone as well; that costs a serial run)
    grade(LAB, course, workers=2, limits=CORPUS_LIMITS, sandbox="full", retry=False, say=print)
    paths = report([LAB], course, say=quiet)
    return SimpleNamespace(root=root, course=course, page=paths[0], html=paths[0].read_text(encoding="utf-8"))


def ids(kind: str) -> list:
    return [student for student, _, k, _ in students() if k == kind]


class Tables(HTMLParser):
    """The page's tables as [{"caption", "headers", "rows" (cell texts), "hrefs" (per row)}], and each h3 before
    a table as that table's "title"."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.title, self._cell, self._in = [], None, None, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self._in.append(tag)
        if tag == "table":
            self.tables.append({"caption": "", "headers": [], "rows": [], "hrefs": [], "title": self.title})
            self.title = None
        elif tag == "tr" and self.tables:
            self._row, self._hrefs = [], []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "a" and self._cell is not None:
            self._hrefs.append(dict(attrs)["href"])
        elif tag == "h3":
            self.title = ""

    def handle_endtag(self, tag):
        self._in.pop()
        if tag in ("td", "th") and self.tables:
            text = re.sub(r"\s+", " ", self._cell).strip()
            (self.tables[-1]["headers"] if tag == "th" else self._row).append(text)
            self._cell = None
        elif tag == "tr" and self.tables and self._row:
            self.tables[-1]["rows"].append(self._row)
            self.tables[-1]["hrefs"].append(self._hrefs)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        elif self._in and self._in[-1] == "caption" and self.tables:
            self.tables[-1]["caption"] += data
        elif self._in and self._in[-1] == "h3" and self.title is not None:
            self.title += data

    def find(self, header: str) -> dict:
        """The table whose first header is ``header``."""
        (found,) = [t for t in self.tables if t["headers"] and t["headers"][0].rstrip(" ▲▼") == header]
        return found

    def titled(self, start: str) -> dict:
        (found,) = [t for t in self.tables if (t["title"] or "").startswith(start)]
        return found


def column(table: dict, header: str) -> list:
    at = [h.rstrip(" ▲▼") for h in table["headers"]].index(header)
    return [row[at] for row in table["rows"]]


# ---------------------------------------------------------------- grouping, without grading


@pytest.mark.parametrize("one, other", [
    ("CheckError: add(1, 2): wrong value\n  expected: 3\n  got:      4",
     "CheckError: add(1, 2): wrong value\n  expected: 3\n  got:      -17.25"),
    ("ValueError: got 0.1234 (1e-05 allowed)", "ValueError: got 12 (3.5E+2 allowed)"),
    ("TypeError: <function add at 0x7f3a2b1c9d30> is not a tensor", "TypeError: <function add at 0x55d1e0> is "
                                                                     "not a tensor"),
    ("FileNotFoundError: '/home/alice/answers/add.txt'", "FileNotFoundError: '/tmp/x/y/add.txt'"),
    ("shape [64, 784]  mismatch", "shape [32, 10] mismatch"),
])
def test_the_same_mistake_groups_together(one, other):
    assert normalise(one) == normalise(other)


@pytest.mark.parametrize("one, other", [
    ("check_dtype: expected torch.float32", "check_dtype: expected torch.float64"),  # digits inside a word stay
    ("CheckError: add(1, 2): wrong value", "CheckError: scale([1, 2]): wrong value"),
    ("KeyError: 'weight'", "KeyError: 'bias'"),
])
def test_different_mistakes_stay_apart(one, other):
    assert normalise(one) != normalise(other)


# ---------------------------------------------------------------- errors that say what to run


def test_an_unknown_lab_names_the_labs_there_are(tmp_path):
    course = tiny_course(tmp_path / "c")
    with pytest.raises(SystemExit, match=rf"unknown lab 'no_such_lab': expected one of {LAB}"):
        report(["no_such_lab"], course, say=quiet)


def test_a_lab_not_graded_yet_says_what_to_run(tmp_path):
    course = tiny_course(tmp_path / "c")
    with pytest.raises(SystemExit, match=rf"no submissions of {LAB} .*python -m autograder collect {LAB} SOURCE"):
        report([LAB], course, say=quiet)
    with pytest.raises(SystemExit, match="no lab of .* is graded yet.*python -m autograder grade LAB"):
        report(None, course, say=quiet)
    folder = tmp_path / "download" / "s1234567"
    folder.mkdir(parents=True)
    nbformat.write(student_notebook(), folder / f"{LAB}.ipynb")
    collect(LAB, tmp_path / "download", course, say=quiet)
    with pytest.raises(SystemExit, match=rf"{LAB} is not graded yet .*run `python -m autograder grade {LAB}`"):
        report([LAB], course, say=quiet)


# ---------------------------------------------------------------- the graded class


def test_status_counts_and_scores(graded_class):
    tables = Tables(graded_class.html)
    statuses = dict(zip(column(tables.find("what"), "what"), column(tables.find("what"), "submissions"),
                        strict=True))
    assert statuses == {"graded": "13", "review": "1", "timeout": "2", "crashed": "1", "invalid": "1", "error": "0",
                        "late": "1", "missing": "1", "not graded yet": "0", "newer file waiting": "0"}
    # scores: 5 x 3 (off by), 3 x 2 (scale), 3 (hidden), 2 x 3 (path), 2 x 3 (timeout), 0, 2 (review), 0, 2 x 5
    assert "mean <b>2.67</b>" in graded_class.html and "median <b>3</b>" in graded_class.html
    assert re.search(r"full marks \(5\) <b>2 of 18</b> \(11 %\)", graded_class.html)
    (student, name, _, _), = [s for s in students() if s[2] == "missing"]
    assert f"missing: {student} ({name})</p>" in graded_class.html, "the roster's name next to the id"
    data = load(graded_class.course, LAB)
    assert data.missing == ids("missing") and [e.student for e in data.entries if e.late] == ids("correct")[1:]


def test_each_test_pass_rate_points_lost_and_failure_groups(graded_class):
    tables = Tables(graded_class.html)
    tests = tables.find("test")
    assert column(tests, "test") == ["test_add", "test_scale", "test_scale_allclose"], "most points lost first"
    assert column(tests, "ran") == ["17", "17", "17"], "the invalid file has no test results"
    assert column(tests, "passed") == ["6 (35 %)", "12 (71 %)", "12 (71 %)"]
    assert column(tests, "points lost") == ["22", "10", "5"]
    assert column(tests, "kinds of failure") == ["5", "2", "2"]

    add = tables.titled("test_add")
    assert column(add, "submissions") == ["5", "2", "2", "1", "1"]
    assert column(add, "points lost") == ["10", "4", "4", "2", "2"]
    examples = column(add, "what a student saw (one example)")
    assert re.fullmatch(r"CheckError: add\(1, 2\): wrong value expected: 3 got: [4-8]", examples[0]), \
        "the five different 'got' numbers are one group"
    assert examples[1:3] == [  # as many and as many points: in the order of their groups' keys
        "FileNotFoundError: [Errno 2] No such file or directory: '/home/<student>/answers/add.txt'",
        "NameError: name 'add' is not defined"], "the two students' own paths are one group, their ids scrubbed"
    assert examples[3:] == ["NotRun: not run: the kernel died in cell 3 (answer 'add')", HIDDEN_FAILURE]
    scale = tables.titled("test_scale:")
    assert column(scale, "submissions") == ["4", "1"] and column(scale, "points lost") == ["8", "2"]
    assert column(scale, "what a student saw (one example)")[0].startswith(
        "CheckError: scale([1, 2]): 2 of 2 values differ")
    allclose = tables.titled("test_scale_allclose")
    assert column(allclose, "submissions") == ["4", "1"]
    assert column(allclose, "what a student saw (one example)")[0] == "AssertionError: scale([0.5, 1.5]) != [1, 3]"


def test_no_hidden_test_shows_in_the_page(graded_class):
    page = graded_class.html
    for line in secret_lines(source_notebook()):
        assert line not in page and nbformat.v4.new_code_cell(line).source not in page
    for marker in ("BEGIN HIDDEN", "hidden-add-check", "hidden-scale-check", "hidden-allclose-check", "add(-5, 5)"):
        assert marker not in page, f"the page shows {marker!r}"


def test_the_submissions_that_need_a_person_link_their_notebook_then_their_feedback(graded_class):
    course = graded_class.course
    table = Tables(graded_class.html).find("student")
    names = column(table, "student")
    expected = ids("crash") + ids("timeout") + ids("patched") + ids("not-json")  # the most urgent first
    assert [name.split(" ")[0] for name in names] == expected
    assert [why.split(":")[0] for why in column(table, "why")] == ["crashed", "timeout", "timeout", "review",
                                                                    "invalid"]
    assert "(Northcott, Nathaniel)" in names[0], "the name from the roster, next to the id"
    for row, hrefs in zip(table["rows"], table["hrefs"], strict=True):
        student = row[0].split(" ")[0]
        if student in ids("not-json"):
            assert hrefs == [] and "no autograded notebook" in row[3]
        else:
            (href,) = hrefs
            assert not Path(href).is_absolute()
            assert (graded_class.page.parent / href).resolve() == course.autograded(student, LAB) / f"{LAB}.ipynb"
        assert f"no feedback yet: run python -m autograder feedback {LAB}" in row[3]

    feedback(LAB, course, say=quiet)  # then the command again, as an instructor runs it
    done = subprocess.run([sys.executable, "-m", "autograder", "report", LAB, "--course", str(course.root)],
                          cwd=ROOT, env=tool_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"{LAB}: wrote {re.escape(str(graded_class.page))} \(18 submission\(s\)\) in \d+\.\d s",
                     done.stdout), done.stdout
    table = Tables(graded_class.page.read_text(encoding="utf-8")).find("student")
    for row, hrefs in zip(table["rows"], table["hrefs"], strict=True):
        student = row[0].split(" ")[0]
        target = (graded_class.page.parent / hrefs[-1]).resolve()
        assert target == course.feedback(student, LAB) / f"{LAB}.html" and target.exists()
        assert "no feedback yet" not in row[3]


def test_run_times_are_reported(graded_class):
    data = load(graded_class.course, LAB)
    wall = sorted(float(e.record["wall_seconds"]) for e in data.entries)
    assert f"max <b>{wall[-1]:.1f} s</b>" in graded_class.html
    assert "limits of this grading run: 10 s per cell, 120 s per notebook" in graded_class.html
    slowest = column(Tables(graded_class.html).find("slowest submissions"), "seconds")
    assert slowest == [f"{w:.1f}" for w in sorted(wall, reverse=True)[:5]]  # the page shows tenths


def test_anonymous_leaves_no_student_id_or_name_in_the_file(graded_class):
    paths = report(None, graded_class.course, anonymous=True, say=quiet)
    assert [p.name for p in paths] == [f"{LAB}-anonymous.html", "course-anonymous.html"]
    for path in paths:
        raw = path.read_bytes()
        for student, name, _, _ in students():
            for secret in (student, f"sis{student}", f"login{student}", *re.split(r",\s*", name)):
                assert secret.encode() not in raw and secret.lower().encode() not in raw.lower(), \
                    f"{path.name} holds {secret!r}"
        assert b"/autograded/" not in raw and b"/feedback/" not in raw, "no link names a student's folder"
    page = paths[0].read_text(encoding="utf-8")
    labels = re.findall(r"student \d+", page)
    assert labels and {int(n.split()[1]) for n in labels} <= set(range(1, len(students()) + 1))
    examples = column(Tables(page).titled("test_add"), "what a student saw (one example)")
    assert any(e.endswith("'/home/<student>/answers/add.txt'") for e in examples), examples
    tables = Tables(page)
    assert column(tables.find("test"), "points lost") == ["22", "10", "5"], "the same numbers, anonymous"


# ---------------------------------------------------------------- the page in a real browser


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


class Offline:
    """A page opened from its file in chromium, every request recorded (and any that would leave the file and
    its data: URIs refused), every console message, page error and failed request kept as a problem."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page()
        self.requests, self.problems = [], []
        self.page.on("console", self.console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("requestfailed", lambda request: self.problems.append(f"request failed: {request.url[:100]}"))
        self.page.route("**/*", self.route)
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def console(self, message):
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def route(self, route):
        self.requests.append(route.request.url)
        if route.request.url.startswith(("file://", "data:")):
            route.continue_()
        else:
            route.abort()

    def check(self, path: Path):
        images = self.page.locator("img")
        assert images.count() >= 1
        for i in range(images.count()):
            assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0"), "a plot did not load"
        self.page.close()
        assert not self.problems, self.problems
        assert self.requests[0] == path.as_uri(), self.requests
        assert all(url.startswith(("file://", "data:")) for url in self.requests), self.requests


def test_the_page_opens_offline_and_sorts_by_its_headers(graded_class, browser):
    opened = Offline(browser, graded_class.page)
    table = opened.page.locator("table:has(th:text-is('test'))")

    def names():
        return table.locator("tbody tr td:first-child").all_inner_texts()
    assert names() == ["test_add", "test_scale", "test_scale_allclose"], "pre-sorted: most points lost first"
    table.locator("th:text-is('test')").click()
    assert names() == ["test_add", "test_scale", "test_scale_allclose"]
    table.locator("th:text-is('test')").click()
    assert names() == ["test_scale_allclose", "test_scale", "test_add"], "a second click sorts the other way"
    table.locator("th:text-is('points lost')").click()
    assert names() == ["test_add", "test_scale", "test_scale_allclose"], "numbers sort as numbers, largest first"
    table.locator("th:text-is('points lost')").click()
    assert names() == ["test_scale_allclose", "test_scale", "test_add"]
    assert table.locator("th:text-is('points lost')").get_attribute("aria-sort") == "ascending"
    opened.check(graded_class.page)


def test_the_course_page_opens_offline_and_links_each_lab(graded_class, browser):
    path = report(None, graded_class.course, say=quiet)[-1]
    assert path.name == "course.html"
    labs = Tables(path.read_text(encoding="utf-8")).find("lab")
    assert labs["rows"] == [[LAB, "18", "2.67 / 5", "3", "11 %", "2 timeout, 1 crashed, 1 review, 1 invalid", "5",
                             labs["rows"][0][7], "test_add (22 lost)"]]
    opened = Offline(browser, path)
    assert opened.page.locator(f"a[href='{LAB}.html']").count() == 1
    opened.check(path)

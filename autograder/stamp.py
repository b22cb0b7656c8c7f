"""The cells of every lab that come from the course settings, not from the lab's author.

``stamp(nb, lab, settings)`` rewrites them in place (``make release`` does it to each
notebook in solutions/ before nbgrader generates notebooks/ from it):

- ``labkit:header``: the first cell, markdown: "Open in Colab", the notebook in the
  student edition, the course and term;
- ``labkit:setup``: the first code cell: on Colab it installs the pinned student
  edition (pip's output and one line on what to check if that fails), then imports
  labkit and starts watching the graded tests;
- each graded test cell's first line, ``# graded test: <id>, <n> points``: students see
  what is graded, and ``labkit.submission`` recognises the cell when it runs;
- ``labkit:submit`` and ``labkit:check``: the last two cells: how to check and hand in
  (the exact file name ``collect`` expects), and the check itself.

Everything else in the notebook is the author's and is left alone.  Stamping is
idempotent: a stamped notebook stamped again with the same settings is unchanged.

Cell ids (nbformat 4.5): the four cells above are made anew at every stamp, so each gets a
fixed id from its tag ("labkit-header", ...).  A notebook still in nbformat 4.4 is upgraded
once: each cell without an id gets one (a graded cell its grade id, any other cell one made
from its position and source), and the release writes them into the source to commit.
"""
from __future__ import annotations

import hashlib
import json
import re

import nbformat

from autograder.settings import Settings
from autograder.vocabulary import is_test, number

HEADER, SETUP, SUBMIT, CHECK = "labkit:header", "labkit:setup", "labkit:submit", "labkit:check"
STAMPED = (HEADER, SETUP, SUBMIT, CHECK)
TEST_LINE = re.compile(r"^# graded test: \S+, [\d.]+ points?$")  # labkit.submission.TEST_LINE reads it
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LMS_NAMES = {"canvas": "Canvas", "moodle": "Moodle"}


def graded_test_line(grade_id: str, points) -> str:
    return f"# graded test: {grade_id}, {number(points)} point{'' if float(points) == 1 else 's'}"


def graded_tests(nb) -> dict:
    """{grade id: points} of the notebook's graded test cells, in notebook order."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells if is_test(c)}


def header_source(lab: str, settings: Settings) -> str:
    colab = settings.colab_url(lab)
    where = "on GitHub" if settings.github else "in the course repository"
    parts = [f"[![Open In Colab]({COLAB_BADGE})]({colab})"] if colab else []
    parts += [f"[This notebook {where}]({settings.source_url(lab)})", f"{settings.name}, {settings.term}"]
    return " &nbsp;·&nbsp; ".join(parts)


def setup_source(settings: Settings) -> str:
    return f"""\
# Setup. On Google Colab this installs labkit, the course's kit, pinned for
# {settings.name}, {settings.term} (it upgrades nothing Colab already has).
# Elsewhere labkit is installed already (see the course's README) and this cell only imports it.
import importlib.util, subprocess, sys
LABKIT_PIP = {json.dumps(settings.pip)}
try:
    import google.colab  # noqa: F401 -- importable only on Colab
    ON_COLAB = True
except ImportError:
    ON_COLAB = False
if ON_COLAB and importlib.util.find_spec("labkit") is None:
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", LABKIT_PIP], capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stdout, pip.stderr, sep="\\n")
        raise RuntimeError(f"pip could not install {{LABKIT_PIP}} (its output is above): check that the runtime "
                           "is connected (top right) and that this page opens in your browser, then run this cell "
                           "again: {settings.source_url()}")
    print("installed", LABKIT_PIP)
import labkit as lk
lk.watch_tests()  # notes which graded tests pass, for the check at the end of the lab"""


def submit_source(lab: str, settings: Settings) -> str:
    name = settings.submission_name(lab)
    example = settings.submission_name(lab, settings.example_id)
    where = (f"Upload it to this lab's assignment on {LMS_NAMES[settings.lms]}." if settings.lms in LMS_NAMES
             else "Hand it in the way your instructor asked.")
    return f"""\
## Check and hand in

1. **Check.** Restart the kernel and run every cell (JupyterLab: *Kernel > Restart Kernel and Run All Cells*;
   Colab: *Runtime > Restart session and run all*), then read the table under the next cell: it lists every
   graded test of this lab and whether it passed. The autograder runs these tests again, and hidden tests
   of the same answers, so a test that passes here can still lose points there.
2. **Download** the notebook (JupyterLab: *File > Download*; Colab: *File > Download > Download .ipynb*).
3. **Name the file `{name}`**, for example `{example}`: the grader finds your work by this name.
4. {where}"""


def check_source(lab: str, nb, settings: Settings) -> str:
    entries = [f"{json.dumps(grade_id)}: {number(points)}," for grade_id, points in graded_tests(nb).items()]
    lines = [[]]  # whole entries per line, up to 96 characters: a test's name and its points stay together
    for entry in entries:
        if lines[-1] and len("    " + " ".join([*lines[-1], entry])) > 96:
            lines.append([])
        lines[-1].append(entry)
    tests = "\n".join("    " + " ".join(line) for line in lines)
    return ("# The graded tests of this lab and how they went in this kernel (restart and run all first: step 1).\n"
            f"lk.check_lab({json.dumps(lab)}, submit_as={json.dumps(settings.submission_name(lab))}, tests={{\n"
            f"{tests.rstrip(',')}\n}})")


CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what nbformat 4.5 allows


def cell_id(tag: str) -> str:
    """The fixed id of a stamped cell: "labkit:header" -> "labkit-header"."""
    return tag.replace(":", "-")


def _tagged(source: str, tag: str, kind: str):
    make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    cell = make(source)
    cell.metadata = {"tags": [tag]}
    cell.id = cell_id(tag)  # made anew at every release: a fixed id keeps the files the same
    return cell


def with_cell_ids(nb):
    """``nb`` in nbformat 4.5, every cell with a unique id.  Valid ids are kept (a repeated one only
    where it first occurs); a new id is the cell's grade id (graded cells) or ``cell-`` and a hash
    of its position and source."""
    nb.nbformat, nb.nbformat_minor = 4, max(5, nb.get("nbformat_minor", 0))
    kept, taken = [], set()
    for cell in nb.cells:
        ok = CELL_ID.match(str(cell.get("id", ""))) and cell.id not in taken
        kept.append(bool(ok))
        if ok:
            taken.add(cell.id)
    for i, (cell, keep) in enumerate(zip(nb.cells, kept, strict=True)):
        if keep:
            continue
        grade_id = str(cell.metadata.get("nbgrader", {}).get("grade_id", ""))
        digest = hashlib.sha1(f"{i}\n{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        candidate = grade_id if CELL_ID.match(grade_id) and grade_id not in taken else f"cell-{digest}"
        n = 1
        while candidate in taken:
            candidate, n = f"cell-{digest}-{n}", n + 1
        cell.id = candidate
        taken.add(candidate)
    return nb


def _tags(cell) -> list:
    return cell.metadata.get("tags", [])


def stamp(nb, lab: str, settings: Settings):
    """Rewrite the settings' cells of ``nb`` (lab ``lab``) in place; return ``nb`` (in nbformat 4.5)."""
    setup_at = next((i for i, c in enumerate(nb.cells) if SETUP in _tags(c)), None)
    if setup_at is None:  # the lab's own first code cell becomes the setup cell
        setup_at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)
        if setup_at is None or "import labkit" not in nb.cells[setup_at].source:
            raise ValueError(f"{lab}: the first code cell must be the setup cell (it imports labkit), or be tagged "
                             f"{SETUP!r}")
    nb.cells[setup_at] = _tagged(setup_source(settings), SETUP, "code")
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            lines = cell.source.split("\n")
            if lines and TEST_LINE.match(lines[0]):
                lines = lines[1:]
            cell.source = "\n".join([graded_test_line(meta["grade_id"], meta["points"]), *lines])
    cells = [c for c in nb.cells if not set(_tags(c)) & {HEADER, SUBMIT, CHECK}]
    nb.cells = [_tagged(header_source(lab, settings), HEADER, "markdown"), *cells,
                _tagged(submit_source(lab, settings), SUBMIT, "markdown"),
                _tagged(check_source(lab, nb, settings), CHECK, "code")]
    return with_cell_ids(nb)

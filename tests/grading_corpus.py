"""A tiny lab and a corpus of bad submissions, built in code, for the grading pipeline's tests.

The lab ``07_tiny`` has two answer cells and three graded test cells (5 points):
``test_add`` (2, with hidden tests), ``test_scale`` (2, labkit.checks, hidden tests)
and ``test_scale_allclose`` (1, plain ``assert torch.allclose``).

``corpus(...)`` returns the files of an LMS download: {file name: (bytes, time)}
and ``EXPECTED`` what each student must get: (status, score, words the reason
must contain), or a list of such outcomes when more than one is right.  Scores: add right = 2,
scale right = 3.  ``tiny_course``, ``make_zip``, ``rows``, ``quiet`` and ``CORPUS_LIMITS``: what the
tests that grade it share (tests/test_grading.py, tests/test_cluster.py).
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.course import Course
from autograder.isolation import Limits
from autograder.vocabulary import visible

CORPUS_LIMITS = Limits(cell_timeout=10, notebook_timeout=120, interrupt_grace=10, memory_mb=1536,
                       tree_memory_mb=2560)


def quiet(*_args, **_kwargs):
    pass


def rows(path: Path) -> dict:
    """grades/<lab>.csv: {student: row}."""
    return {row["student"]: row for row in csv.DictReader(io.StringIO(path.read_text()))}


def make_zip(path: Path, files: dict) -> Path:
    """An LMS download of {name: (bytes, time)}."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, (data, time) in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=time.timetuple()[:6]), data)
    return path


def tiny_course(root: Path) -> Course:
    """A course folder at ``root`` whose only lab is the tiny one (its source in solutions/)."""
    (root / "solutions" / LAB).mkdir(parents=True)
    nbformat.write(source_notebook(), root / "solutions" / LAB / f"{LAB}.ipynb")
    return Course(root)

LAB = "07_tiny"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _meta(grade_id, *, grade=False, solution=False, locked=False, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def answer_cell(grade_id, source):
    return new_code_cell(source, metadata=_meta(grade_id, solution=True))


def test_cell(grade_id, source, points):
    return new_code_cell(source, metadata=_meta(grade_id, grade=True, locked=True, points=points))


ADD = """def add(a, b):
    # TODO: return the sum of a and b
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION"""
SCALE = """def scale(x):
    # TODO: return 2 * x as a float32 tensor
    ### BEGIN SOLUTION
    return 2 * torch.as_tensor(x, dtype=torch.float32)
    ### END SOLUTION"""
TEST_ADD = """from labkit.checks import check_equal
check_equal(add(1, 2), 3, name="add(1, 2)")
### BEGIN HIDDEN TESTS
check_equal(add(-5, 5), 0, name="add(-5, 5) [hidden-add-check]")
### END HIDDEN TESTS"""
TEST_SCALE = """import torch
from labkit.checks import check_close
check_close(scale(torch.tensor([1.0, 2.0])), torch.tensor([2.0, 4.0]), name="scale([1, 2])")
### BEGIN HIDDEN TESTS
check_close(scale(torch.tensor([-3.0])), torch.tensor([-6.0]), name="scale([-3]) [hidden-scale-check]")
### END HIDDEN TESTS"""
TEST_ALLCLOSE = """import torch
assert torch.allclose(scale(torch.tensor([0.5, 1.5])), torch.tensor([1.0, 3.0])), "scale([0.5, 1.5]) != [1, 3]"
### BEGIN HIDDEN TESTS
assert torch.allclose(scale(torch.tensor([10.0])), torch.tensor([20.0])), "hidden-allclose-check failed"
### END HIDDEN TESTS"""


def source_notebook() -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    nb.cells = [
        new_markdown_cell("# A tiny lab\nTwo functions, three graded tests."),
        new_code_cell("import torch\nimport labkit as lk"),
        answer_cell("add", ADD),
        test_cell("test_add", TEST_ADD, 2),
        answer_cell("scale", SCALE),
        test_cell("test_scale", TEST_SCALE, 2),
        test_cell("test_scale_allclose", TEST_ALLCLOSE, 1),
    ]
    return nb


def _strip_solution(source: str, replacement: str) -> str:
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        if line.strip() == "### BEGIN SOLUTION":
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + replacement)
        elif line.strip() == "### END SOLUTION":
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def student_notebook(add: str | None = "right", scale: str | None = "right", extra: dict | None = None):
    """The released notebook with answers: 'right', 'wrong', None (the stub) or any code for the body.

    ``extra`` maps a grade id to code inserted at the top of that cell (before the answer)."""
    bodies = {
        "add": {"right": "return a + b", "wrong": "return a - b", None: "raise NotImplementedError()"},
        "scale": {"right": "return 2 * torch.as_tensor(x, dtype=torch.float32)", "wrong": "return x",
                  None: "raise NotImplementedError()"},
    }
    nb = source_notebook()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if meta.get("solution"):
            choice = {"add": add, "scale": scale}[gid]
            cell.source = _strip_solution(cell.source, bodies[gid].get(choice, choice) if choice in bodies[gid]
                                          else choice)
        elif meta.get("grade"):
            cell.source = visible(cell.source)
        if extra and gid in extra:
            cell.source = extra[gid] + "\n" + cell.source
    return nb


def dumps(nb) -> bytes:
    return nbformat.writes(nb).encode()


def _without(nb, grade_id):
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


def _as_markdown_in_v44(nb, grade_id) -> bytes:
    """A correct notebook saved as nbformat 4.4 (no cell ids: older JupyterLab, Colab), one test cell turned
    into a markdown cell the way JupyterLab does it (the "M" key: outputs and execution count dropped)."""
    data = json.loads(nbformat.writes(nb))
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        cell.pop("id", None)
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
            cell["cell_type"] = "markdown"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    return json.dumps(data, indent=1).encode()


def _find(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


CANARY = "LABKIT_GRADER_CANARY"  # set in the grader's environment by the test: it must reach no sandboxed process


def corpus(course_root, port: int, other_student_file: str, gradebook: str) -> dict:
    """{file name in the zip: (bytes, time)}: the LMS download of the tiny lab."""
    t0 = datetime(2025, 3, 1, 12, 0, 0)
    files = {}

    def add_file(name, data, minutes=0):
        files[name] = (data if isinstance(data, bytes) else dumps(data), t0 + timedelta(minutes=minutes))

    add_file("control-full_07_tiny.ipynb", student_notebook())
    add_file("control-partial_07_tiny.ipynb", student_notebook(scale=None))
    add_file("syntax-error_07_tiny.ipynb", student_notebook(add="return a +* b"))
    add_file("hidden-only_07_tiny.ipynb", student_notebook(add="return a + b if a >= 0 else -1"))
    add_file("exception_07_tiny.ipynb", student_notebook(extra={"add": "x = 1 / 0"}))
    add_file("infinite-loop_07_tiny.ipynb", student_notebook(extra={"add": "while True:\n    pass"}))
    add_file("sleep-forever_07_tiny.ipynb", student_notebook(extra={"add": "import time\ntime.sleep(10**6)"}))
    add_file("unstoppable_07_tiny.ipynb", student_notebook(extra={"add": (
        "import time\nwhile True:\n    try:\n        time.sleep(1)\n    except BaseException:\n        pass")}))
    add_file("memory-bomb_07_tiny.ipynb", student_notebook(extra={"scale": (
        "def _bomb():\n    hog = []\n    while True:\n        hog.append(bytearray(50 * 2**20))\n_bomb()")}))
    add_file("fork-bomb_07_tiny.ipynb", student_notebook(extra={"add": (
        "import os\nwhile True:\n    os.fork()")}))
    add_file("kernel-death_07_tiny.ipynb", student_notebook(extra={"add": "import os\nos._exit(1)"}))
    add_file("deleted-test_07_tiny.ipynb", _without(student_notebook(add="wrong"), "test_add"))
    edited = student_notebook(scale="wrong")
    _find(edited, "test_scale").source = "pass  # no more checks"
    _find(edited, "test_scale_allclose").source = "assert True"
    add_file("edited-test_07_tiny.ipynb", edited)
    changed = student_notebook(add="wrong")
    cell = _find(changed, "test_add")
    changed.cells[changed.cells.index(cell)] = new_markdown_cell(cell.source, metadata=cell.metadata)
    add_file("changed-type_07_tiny.ipynb", changed)
    add_file("markdown-test_07_tiny.ipynb", _as_markdown_in_v44(student_notebook(), "test_add"))
    duplicated = student_notebook(add="wrong")
    copy = nbformat.from_dict(json.loads(json.dumps(_find(duplicated, "test_add"))))
    copy.source = "pass  # a copy with the checks removed"
    copy["id"] = "copy-of-test-add"
    duplicated.cells.insert(duplicated.cells.index(_find(duplicated, "test_add")) + 1, copy)
    add_file("duplicated-cell_07_tiny.ipynb", duplicated)
    add_file("patch-allclose_07_tiny.ipynb", student_notebook(scale="wrong", extra={
        "scale": "import torch\ntorch.allclose = lambda *a, **k: True\ntorch.Tensor.__eq__ = lambda *a: True"}))
    add_file("patch-assert_07_tiny.ipynb", student_notebook(add="wrong", scale="wrong", extra={
        "add": ("import builtins\nbuiltins.AssertionError = type('AssertionError', (Exception,), {})\n"
                "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)")}))
    add_file("patch-checks_07_tiny.ipynb", student_notebook(add="wrong", scale="wrong", extra={
        "add": ("import labkit.checks as checks\nchecks.check_equal = lambda *a, **k: None\n"
                "checks.check_close = lambda *a, **k: None\nchecks._fail = lambda *a, **k: None\n"
                "import sys\nsys.modules['labkit.checks'] = checks")}))
    add_file("harness-attack_07_tiny.ipynb", student_notebook(add="wrong", scale="wrong", extra={
        "add": "__labkit_grader__ = lambda *a, **k: None"}))
    snoop = (
        "import os, glob\n"
        "print('scratch:', sorted(os.listdir('.')))\n"
        "targets = {paths!r}\n"
        "for path in targets:\n"
        "    try:\n"
        "        with open(path, 'rb') as f:\n"
        "            print('LEAK read', path, len(f.read()))\n"
        "    except OSError as exc:\n"
        "        print('blocked read', path, type(exc).__name__)\n"
        "for path in {writes!r}:\n"
        "    try:\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('pwned')\n"
        "        print('LEAK write', path)\n"
        "    except OSError as exc:\n"
        "        print('blocked write', path, type(exc).__name__)\n"
        "print('LEAK glob' if glob.glob({course!r} + '/*') else 'blocked glob')\n"
        "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:  # the grader's environment, anywhere?\n"
        "    try:\n"
        "        with open(f'/proc/{{pid}}/environ', 'rb') as f:\n"
        "            found = {canary!r}.encode() in f.read()\n"
        "        print('LEAK environ' if found else 'clean environ', pid)\n"
        "    except OSError as exc:\n"
        "        print('blocked environ', pid, type(exc).__name__)\n"
        "open('scratch-ok.txt', 'w').write('fine')\n"
    ).format(paths=[f"{course_root}/solutions/{LAB}/{LAB}.ipynb", gradebook, other_student_file,
                    f"{course_root}/.autograder/labs", "/etc/shadow", "/root/.bashrc"], canary=CANARY,
             writes=[f"{course_root}/pwned.txt", f"{course_root}/submitted/pwned.txt", "/usr/pwned.txt",
                     "/pwned.txt"], course=str(course_root))
    add_file("snoop_07_tiny.ipynb", student_notebook(extra={"add": snoop}))
    network = (
        "import socket, urllib.request\n"
        f"for target in [('127.0.0.1', {port}), ('1.1.1.1', 53)]:\n"
        "    try:\n"
        "        socket.create_connection(target, timeout=3).close()\n"
        "        print('LEAK connected', target)\n"
        "    except OSError as exc:\n"
        "        print('blocked connect', target, exc)\n"
        "try:\n"
        "    urllib.request.urlopen('http://example.com', timeout=3)\n"
        "    print('LEAK http')\n"
        "except OSError as exc:\n"
        "    print('blocked http', exc)\n")
    add_file("network_07_tiny.ipynb", student_notebook(extra={"add": network}))
    add_file("huge-output_07_tiny.ipynb", student_notebook(extra={"add": (
        "print('x' * 30_000_000)\nfor i in range(200_000):\n    print(i)")}))
    add_file("input-call_07_tiny.ipynb", student_notebook(extra={"add": "name = input('your name? ')"}))
    add_file("not-json_07_tiny.ipynb", b"this is not a notebook, it is a text file\n")
    add_file("empty-file_07_tiny.ipynb", b"")
    add_file("Untitled.ipynb", student_notebook())
    colab = student_notebook()
    colab.metadata = {"colab": {"provenance": [], "name": "07_tiny.ipynb"}, "accelerator": "GPU",
                      "kernelspec": {"name": "python3", "display_name": "Python 3"},
                      "language_info": {"name": "python"}}
    for i, c in enumerate(colab.cells):
        c["id"] = f"colab{i:04d}"
        c.metadata["colab"] = {"base_uri": "https://localhost:8080/"}
    add_file("colab_07_tiny.ipynb", colab)
    stale = student_notebook(add=None, scale=None)
    for c in stale.cells:
        if c.cell_type == "code":
            c.execution_count = 1
            c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="all tests passed!\n")]
    add_file("stale-outputs_07_tiny.ipynb", stale)
    wrong_lab = new_notebook(metadata={"kernelspec": KERNELSPEC})
    wrong_lab.cells = [new_code_cell("print('this is my lab 2 notebook')",
                                     metadata=_meta("softmax", solution=True))]
    add_file("wrong-lab_07_tiny.ipynb", wrong_lab)
    big = student_notebook()
    big.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * (3 * 2**20))]
    add_file("too-large_07_tiny.ipynb", big)
    add_file("resubmitted_07_tiny.ipynb", student_notebook(), minutes=-60)   # the first try: all right
    add_file("resubmitted_07_tiny (1).ipynb", student_notebook(scale=None), minutes=30)  # latest: wins
    return files


# status, score, words the reason must contain (case-insensitive); a list: any one of these outcomes
EXPECTED = {
    "control-full": ("graded", 5, ["passed 3 of 3"]),
    "control-partial": ("graded", 2, ["passed 1 of 3", "NotImplementedError"]),
    "hidden-only": ("graded", 3, ["test_add (CheckError: add(-5, 5) [hidden-add-check]: wrong value)"]),
    "syntax-error": ("graded", 3, ["test_add", "NameError", "answer 'add' raised SyntaxError"]),
    "exception": ("graded", 3, ["test_add", "NameError", "answer 'add' raised ZeroDivisionError"]),
    "infinite-loop": ("timeout", 3, ["time limit", "answer 'add'"]),
    "sleep-forever": ("timeout", 3, ["time limit", "answer 'add'"]),
    "unstoppable": ("timeout", 0, ["did not stop when interrupted", "not run"]),
    "memory-bomb": ("graded", 2, ["test_scale", "answer 'scale' raised MemoryError"]),
    # A fork bomb's end is a race, so three outcomes are right: its children copy the kernel's memory until
    # the tree's memory cap (the kernel is killed: crashed; the cause is named when the cgroup reports it),
    # or the cell's time limit comes first and the kernel survives the strays being killed (later cells run:
    # 3) or stays deaf (stopped: 0).  Measured: all three, depending on the load of the machine.
    "fork-bomb": [("timeout", 3, ["test_add", "time limit", "answer 'add'"]),
                  ("timeout", 0, ["time limit", "answer 'add'", "did not stop when interrupted"]),
                  ("crashed", 0, ["kernel died", "answer 'add'"])],
    "kernel-death": ("crashed", 0, ["kernel died", "answer 'add'", "exit code 1"]),
    "deleted-test": ("graded", 3, ["test cell 'test_add' was missing", "test_add"]),
    "edited-test": ("graded", 2, ["was edited", "test_scale"]),
    "changed-type": ("graded", 3, ["changed to markdown", "test_add"]),
    "markdown-test": ("graded", 5, ["passed 3 of 3", "test cell 'test_add' was changed to markdown: nbgrader "
                                                     "changed it back"]),
    "duplicated-cell": ("graded", 3, ["appears 2 times", "test_add"]),
    "patch-allclose": ("review", 2, ["torch.allclose", "test_scale_allclose"]),
    "patch-assert": ("review", 0, ["AssertionError", "custom exception"]),
    "patch-checks": ("review", 0, ["labkit.checks"]),
    "harness-attack": ("graded", 0, ["did not report a result"]),
    "snoop": ("graded", 5, ["passed 3 of 3"]),
    "network": ("graded", 5, ["passed 3 of 3"]),
    "huge-output": ("graded", 5, ["output truncated"]),
    "input-call": ("graded", 3, ["test_add", "answer 'add' raised StdinNotImplementedError"]),
    "not-json": ("invalid", 0, ["not valid JSON"]),
    "empty-file": ("invalid", 0, ["empty"]),
    "colab": ("graded", 5, ["saved from Google Colab"]),
    "stale-outputs": ("graded", 0, ["outputs saved in the file were discarded"]),
    "wrong-lab": ("graded", 0, ["right lab"]),
    "too-large": ("invalid", 0, ["too large"]),
    "resubmitted": ("graded", 2, ["passed 1 of 3"]),
}

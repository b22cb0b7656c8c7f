"""Any nbgrader assignment is a lab: several notebooks of any names, manually graded cells, task cells.

An assignment ``ps1`` of two notebooks is built in code (as nbgrader's own documentation course
has it: problem1.ipynb, problem2.ipynb), handed in three ways (a folder per student, a zip per
student, files named by the id rule), graded by the kit and by plain ``nbgrader autograde``:
every student gets the same score from both, one row per student with each notebook's part.
"""
import csv
import io
import json
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder import tool_env
from autograder.collect import collect, notebook_of
from autograder.course import Course
from autograder.export import export
from autograder.feedback import feedback, secret_lines
from autograder.grade import grade
from autograder.isolation import Limits
from autograder.report import load, report

LAB = "ps1"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LIMITS = Limits(cell_timeout=20, notebook_timeout=120, interrupt_grace=10, memory_mb=1536, tree_memory_mb=2560)


def meta(grade_id, *, grade=False, solution=False, locked=False, task=False, points=None):
    out = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
           "task": task}
    if points is not None:
        out["points"] = points
    return {"nbgrader": out}


def problem1(squares="return [x * x for x in xs]", essay="Because the square of a negative number is positive."):
    return new_notebook(metadata={"kernelspec": KERNELSPEC}, cells=[
        new_markdown_cell("# Problem 1: squares", metadata=meta("intro1", locked=True)),
        new_code_cell("def squares(xs):\n    ### BEGIN SOLUTION\n    " + squares + "\n    ### END SOLUTION",
                      metadata=meta("squares", solution=True)),
        new_code_cell("assert squares([1, 2]) == [1, 4]\n### BEGIN HIDDEN TESTS\n"
                      "assert squares([-3]) == [9], 'hidden-squares-check'\n### END HIDDEN TESTS",
                      metadata=meta("test_squares", grade=True, locked=True, points=2)),
        new_markdown_cell(f"### BEGIN SOLUTION\n{essay}\n### END SOLUTION",
                          metadata=meta("why_positive", grade=True, solution=True, points=2)),
    ])


def problem2(halve="return x / 2"):
    return new_notebook(metadata={"kernelspec": KERNELSPEC}, cells=[
        new_markdown_cell("# Problem 2: halves", metadata=meta("intro2", locked=True)),
        new_code_cell("def halve(x):\n    ### BEGIN SOLUTION\n    " + halve + "\n    ### END SOLUTION",
                      metadata=meta("halve", solution=True)),
        new_code_cell("assert halve(4) == 2\n### BEGIN HIDDEN TESTS\nassert halve(-1) == -0.5, 'hidden-halve-check'\n"
                      "### END HIDDEN TESTS", metadata=meta("test_halve", grade=True, locked=True, points=3)),
        new_markdown_cell("Plot halve(x) for x in 0..10 and say what you see.",
                          metadata=meta("task_plot", task=True, locked=True, points=1)),
    ])


def released(nb):
    """What a student got: solutions replaced by nbgrader's stub, hidden tests gone."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        lines, out, skip = cell.source.splitlines(), [], False
        for line in lines:
            if line.strip() in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
                skip = True
                if "SOLUTION" in line:
                    out.append(line.replace("### BEGIN SOLUTION", "raise NotImplementedError()")
                               if cell.cell_type == "code" else "YOUR ANSWER HERE")
            elif line.strip() in ("### END SOLUTION", "### END HIDDEN TESTS"):
                skip = False
            elif not skip:
                out.append(line)
        cell.source = "\n".join(out)
    return nb


def answered(nb):
    """A student's copy with the answers as given in ``nb`` (visible tests only, no markers)."""
    given = released(nb)
    for cell, source in zip(given.cells, nb.cells, strict=True):
        if cell.metadata["nbgrader"]["solution"]:
            cell.source = source.source.replace("### BEGIN SOLUTION\n", "").replace("\n### END SOLUTION", "")
            cell.source = "\n".join(line for line in cell.source.splitlines())
    return given


def dumps(nb) -> bytes:
    return nbformat.writes(nb).encode()


T0 = datetime(2026, 11, 20, 9, 0, 0)
# student -> (problem1, problem2 or None when not handed in): the kit's score must equal nbgrader's
STUDENTS = {
    "full": (problem1(), problem2()),
    "partial": (problem1(), problem2(halve="return x // 2")),            # fails the hidden halve(-1)
    "wrong": (problem1(squares="return xs"), problem2(halve="return 1 / 0")),
    "one-notebook": (problem1(), None),                                   # problem2.ipynb never handed in
}
EXPECTED = {"full": 5, "partial": 2, "wrong": 0, "one-notebook": 2}  # autograded points (manual cells: 0 until graded)


def download(path: Path) -> Path:
    """An LMS download: 'full' as a folder of its own, 'partial' as a zip, the others named by the id rule;
    a stray text file and a notebook that is none of the assignment's."""
    with zipfile.ZipFile(path, "w") as archive:
        def put(name, data, minutes=0):
            archive.writestr(zipfile.ZipInfo(name, date_time=(T0 + timedelta(minutes=minutes)).timetuple()[:6]), data)
        put("full/problem1.ipynb", dumps(answered(STUDENTS["full"][0])))
        put("full/problem2.ipynb", dumps(answered(STUDENTS["full"][1])))
        put("full/notes.txt", b"my notes")
        put("full/scratch.ipynb", dumps(new_notebook()))
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as student_zip:
            student_zip.writestr("problem1.ipynb", dumps(answered(STUDENTS["partial"][0])))
            student_zip.writestr("problem2.ipynb", dumps(answered(STUDENTS["partial"][1])))
        put("partial_ps1.zip", inner.getvalue())
        put("wrong_problem1.ipynb", dumps(answered(STUDENTS["wrong"][0])))
        put("wrong_problem2 (1).ipynb", dumps(answered(STUDENTS["wrong"][1])))
        put("one-notebook_problem1.ipynb", dumps(answered(STUDENTS["one-notebook"][0])))
    return path


def nbgrader(*args, cwd):
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"], cwd=cwd, env=tool_env(),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def gradebook_scores(db_url: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        return {s.student.id: (s.score, {n.name: n.score for n in s.notebooks})
                for s in gb.find_assignment(LAB).submissions}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("course")
    (root / "solutions" / LAB).mkdir(parents=True)
    nbformat.write(problem1(), root / "solutions" / LAB / "problem1.ipynb")
    nbformat.write(problem2(), root / "solutions" / LAB / "problem2.ipynb")
    (root / "solutions" / "ps2").mkdir()  # a folder that is not a lab: no notebook in it
    (root / "solutions" / "ps2" / "README.md").write_text("to do")
    course = Course(root)
    report = collect(LAB, download(root.parent / "download.zip"), course, say=print)
    records = grade(LAB, course, limits=LIMITS, sandbox="full", say=print)

    # the same submissions, graded by nbgrader alone, in a course folder of its own
    plain = tmp_path_factory.mktemp("plain")
    (plain / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.root = {str(plain)!r}\n")
    shutil.copytree(root / "solutions" / LAB, plain / "source" / LAB)
    nbgrader("generate_assignment", LAB, "--force", cwd=plain)
    for student in STUDENTS:
        target = plain / "submitted" / student / LAB
        shutil.copytree(course.submitted(student, LAB), target, ignore=shutil.ignore_patterns("*.json"))
    nbgrader("autograde", LAB, "--force", cwd=plain)
    return {"course": course, "report": report, "records": records,
            "kit": gradebook_scores(course.db_url), "nbgrader": gradebook_scores(f"sqlite:///{plain / 'gradebook.db'}")}


def test_an_assignment_of_two_notebooks_is_a_lab(tmp_path):
    (tmp_path / "solutions" / LAB).mkdir(parents=True)
    for name, nb in (("problem1", problem1()), ("problem2", problem2())):
        nbformat.write(nb, tmp_path / "solutions" / LAB / f"{name}.ipynb")
    (tmp_path / "solutions" / "ps2").mkdir()
    course = Course(tmp_path)
    assert course.labs() == [LAB] and course.notebooks(LAB) == ["problem1", "problem2"]
    course.check_lab(LAB)
    with pytest.raises(SystemExit, match=r"'ps2' is not a lab: .*ps2 holds no notebook"):
        course.check_lab("ps2")
    with pytest.raises(SystemExit, match=r"unknown lab 'ps3': expected one of ps1"):
        course.check_lab("ps3")


def test_release_writes_the_student_copy_of_each_notebook(tmp_path):
    from autograder.release import release

    (tmp_path / "solutions" / LAB).mkdir(parents=True)
    for name, nb in (("problem1", problem1()), ("problem2", problem2())):
        nbformat.write(nb, tmp_path / "solutions" / LAB / f"{name}.ipynb")
    release([LAB], release_dir=tmp_path / "release", solutions=tmp_path / "solutions")
    for name in ("problem1", "problem2"):
        text = (tmp_path / "release" / LAB / f"{name}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "hidden-" not in text and "NotImplementedError" in text
    (tmp_path / "solutions" / "ps2").mkdir()
    with pytest.raises(SystemExit, match="cannot release 'ps2': .* holds no notebook"):
        release(["ps2"], release_dir=tmp_path / "release", solutions=tmp_path / "solutions")


@pytest.mark.parametrize("name, notebook", [
    ("problem1.ipynb", "problem1"), ("alice_problem2.ipynb", "problem2"), ("problem2 (1).ipynb", "problem2"),
    ("alice_ps1.zip/problem1.ipynb", "problem1"), ("lastfirst_123_456_problem1-1.ipynb", "problem1"),
    ("scratch.ipynb", None), ("problem12.ipynb", None),
])
def test_a_file_is_matched_to_one_notebook_of_the_lab_by_its_name(name, notebook):
    assert notebook_of(name, ["problem1", "problem2"]) == notebook
    assert notebook_of(name, ["only"]) == "only"  # a lab of one notebook takes any file


def test_every_notebook_is_collected_from_folders_zips_and_names(graded):
    course = graded["course"]
    for student, (_, second) in STUDENTS.items():
        names = sorted(p.name for p in course.submitted(student, LAB).glob("*.ipynb"))
        assert names == (["problem1.ipynb", "problem2.ipynb"] if second else ["problem1.ipynb"]), (student, names)
    refused = {row["file"]: row["detail"] for row in graded["report"] if row["action"] == "refused"}
    assert set(refused) == {"full/notes.txt", "full/scratch.ipynb"}, refused
    assert "not one of the notebooks of ps1 (problem1.ipynb, problem2.ipynb)" in refused["full/scratch.ipynb"]


def test_the_kit_and_nbgrader_give_every_student_the_same_score(graded):
    kit, plain = graded["kit"], graded["nbgrader"]
    assert set(kit) == set(plain) == set(STUDENTS)
    for student, expected in EXPECTED.items():
        assert kit[student][0] == plain[student][0] == expected, (student, kit[student], plain[student])
        assert kit[student][1] == plain[student][1], (student, kit[student], plain[student])


def test_one_row_per_student_with_each_notebooks_part(graded):
    course = graded["course"]
    rows = {row["student"]: row for row in csv.DictReader(io.StringIO(course.grades_csv(LAB).read_text()))}
    assert set(rows) == set(STUDENTS)
    assert {s: float(r["score"]) for s, r in rows.items()} == EXPECTED
    assert {r["max_score"] for r in rows.values()} == {"8"}  # problem1: 2 + 2 manual; problem2: 3 + 1 task
    assert rows["full"]["reason"].startswith("problem1 2/4: passed 1 of 1 tests; problem2 3/4: passed 1 of 1")
    assert "problem2 0/4: passed 0 of 1 tests; failed test_halve (AssertionError" in rows["partial"]["reason"]
    assert "problem2 0/4: passed 0 of 1 tests; failed test_halve (ZeroDivisionError" in rows["wrong"]["reason"]
    assert "problem2 0/4: problem2.ipynb was not handed in" in rows["one-notebook"]["reason"]
    assert rows["one-notebook"]["status"] == "graded"


def test_feedback_for_each_notebook_never_shows_a_hidden_test(graded):
    course = graded["course"]
    paths = feedback(LAB, course, say=print)
    secrets = secret_lines(problem1()) | secret_lines(problem2())
    for check in ("hidden-squares-check", "hidden-halve-check"):
        assert any(check in line for line in secrets), (check, secrets)
    assert sorted(p.relative_to(course.root / "feedback").as_posix() for p in paths) == sorted(
        f"{s}/{LAB}/problem{n}.html" for s in STUDENTS for n in (1, 2))
    for path in paths:
        text = path.read_text()
        assert not [line for line in secrets if line in text], path
    assert "problem2.ipynb was not handed in" in (course.feedback("one-notebook", LAB) / "problem2.html").read_text()


def test_export_has_the_summed_score_of_each_student(graded):
    path = export(graded["course"], say=print)
    rows = list(csv.reader(io.StringIO(path.read_text())))
    column = rows[0].index(LAB)
    scores = {row[0]: row[column] for row in rows[1:] if row[0] in STUDENTS}
    assert scores == {s: f"{v:g}" for s, v in EXPECTED.items()}


def test_the_class_report_has_each_notebooks_tests_and_the_cells_to_grade_by_hand(graded):
    """A lab of several notebooks in the class report (autograder/report.py, tests/test_report.py): each test
    under its notebook's name, the manually graded and task cells that wait in the gradebook, and the
    notebook that was never handed in, each a reason for a person to look."""
    course = graded["course"]
    (path,) = report([LAB], course, say=print)
    data = load(course, LAB)
    assert [(t.name, t.ran, t.passed, t.points_lost) for t in data.tests] == [
        ("problem2: test_halve", 3, 1, 6.0), ("problem1: test_squares", 4, 3, 2.0)], "most points lost first"
    assert {e.student: (e.attention, e.manual) for e in data.entries} == {
        "full": (["manual"], 2), "partial": (["manual"], 2), "wrong": (["manual"], 2),
        "one-notebook": (["part", "manual"], 1)}  # the essay and the task cell; no problem2 to grade by hand
    page = path.read_text(encoding="utf-8")
    assert not [line for line in secret_lines(problem1()) | secret_lines(problem2()) if line in page]
    assert "hidden-halve-check" not in page and "hidden-squares-check" not in page
    for student in STUDENTS:
        assert f"href='../autograded/{student}/{LAB}/problem1.ipynb'" in page

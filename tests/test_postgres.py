"""The gradebook on PostgreSQL: a real server from Debian's `postgresql` package (tests/postgres_server.py:
its own data folder, a free port on 127.0.0.1, run as a non-root user), the kit's commands and nbgrader's own.

Lab 1 (the quickest) is collected, graded and exported against it (alice: the solution; bob: the untouched
release; carol: a file that is not a notebook); the server is stopped and started again and every grade is
still there, the export byte for byte the same.  A TA's manual grade written the way the formgrader writes it,
by nbgrader's own API loaded from the course folder's nbgrader_config.py (which finds the database in
course.toml's [database] url), survives `grade --force` and shows in `grades/<lab>.csv` and `export`.
Where PostgreSQL's programs are missing the test skips saying what to install (under CI=true it fails:
`make test` installs them as root).
"""
import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import require
from postgres_server import INSTALL, PostgresServer, server_bin

from autograder import ROOT, solution_notebook, tool_env
from autograder.course import Course, gradebook_url
from autograder.settings import SettingsError
from autograder.settings import load as load_settings

LAB = "01_xor"  # the quickest lab to grade
DATABASE = "labkit_test"
GRADER = "grader"  # the database's owner, the role the kit and the TAs connect as (docs/grading.md)


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server with the course's database, owned by the role ``grader``, as the docs create it."""
    bin_dir = server_bin()
    require(bin_dir is not None, INSTALL)
    server = PostgresServer(bin_dir)
    try:
        server.start()
        server.client("createuser", GRADER)
        server.client("createdb", "--owner", GRADER, DATABASE)
        yield server
    finally:
        server.remove()


def kit(*args, env=None) -> str:
    """`python -m autograder ARGS`, as an instructor runs it; its output."""
    environment = dict(tool_env(), OMP_NUM_THREADS="1")
    environment.pop("LABKIT_GRADEBOOK", None)
    environment.update(env or {})
    done = subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=ROOT, env=environment,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"python -m autograder {' '.join(map(str, args))} failed:\n" \
                                 f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def gradebook_scores(url: str) -> dict:
    """student -> (score, max score, {test: (auto, manual)}) of Lab 1, read from the gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(gradebook_url(url)) as gb:
        for submission in gb.find_assignment(LAB).submissions:
            grades = {g.name: (g.auto_score, g.manual_score) for n in submission.notebooks for g in n.grades}
            out[submission.student.id] = (submission.score, submission.max_score, grades)
    return out


def csv_rows(path: Path) -> dict:
    with open(path, newline="") as f:
        return {row[0]: row for row in csv.reader(f)}


# What a TA's formgrader does, in a fresh Python started in the course folder: nbgrader's configuration as
# its apps load it (the folder's nbgrader_config.py), the formgrader's API (NbGraderAPI) listing the
# submissions, and a manual grade saved as the formgrader's GradeHandler.put saves one.
FORMGRADER = r"""
import json, sys
from nbgrader.apps import NbGrader
from nbgrader.apps.api import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

app = NbGrader()
app.load_config_file()
coursedir = CourseDirectory(config=app.config)
api = NbGraderAPI(coursedir=coursedir, config=app.config)
listed = {s["student"]: [s["score"], s["max_score"]] for s in api.get_submissions(sys.argv[1])}
cell, student, points = sys.argv[2], sys.argv[3], float(sys.argv[4])
gb = api.gradebook
try:
    grade = gb.find_grade_by_id(gb.find_grade(cell, sys.argv[1], sys.argv[1], student).id)
    grade.manual_score = points
    grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
    gb.db.commit()
finally:
    gb.close()
print(json.dumps({"db_url": coursedir.db_url, "listed": listed}))
"""


def test_collect_grade_export_on_postgresql_keeps_every_grade_across_a_restart(postgres, tmp_path):
    url = postgres.url(DATABASE, GRADER)  # plain postgresql://: the kit uses psycopg 3 for it
    root = tmp_path / "course"
    root.mkdir()
    settings = (ROOT / "course.toml").read_text().replace('lms = "canvas"', 'lms = "none"')
    (root / "course.toml").write_text(settings)
    download = tmp_path / "download"
    for student in ("alice", "bob", "carol"):
        (download / student).mkdir(parents=True)
    nbformat.write(solution_notebook(LAB), download / "alice" / f"{LAB}.ipynb")
    (download / "bob" / f"{LAB}.ipynb").write_bytes((ROOT / "notebooks" / LAB / f"{LAB}.ipynb").read_bytes())
    (download / "carol" / f"{LAB}.ipynb").write_text("this is not a notebook")

    kit("collect", LAB, download, "--course", root)
    # A password (the server trusts 127.0.0.1, so any will do) is used, and never shown or written down.
    with_password = url.replace(f"//{GRADER}@", f"//{GRADER}:not-shown@")
    said = kit("grade", LAB, "--course", root, "--db", with_password)
    assert f"the gradebook postgresql+psycopg://{GRADER}:***@127.0.0.1:{postgres.port}/{DATABASE}" in said, \
        said[-2000:]
    assert "not-shown" not in said
    written = [p for p in (root / ".autograder").rglob("*") if p.is_file() and b"not-shown" in p.read_bytes()]
    assert not written, f"the gradebook's password was written into {written}"
    stamps = [json.loads(p.read_text()) for p in (root / ".autograder" / "labs").rglob("in-gradebook.json")]
    assert stamps == [[f"postgresql+psycopg://{GRADER}@127.0.0.1:{postgres.port}/{DATABASE}"]], stamps
    first = tmp_path / "first.csv"
    kit("export", "--course", root, "--db", url, "--to", first)
    assert not (root / "gradebook.db").exists(), "a SQLite gradebook was written beside the PostgreSQL one"

    by_grade = {s: row for s, row in csv_rows(root / "grades" / f"{LAB}.csv").items() if s != "student"}
    stored = gradebook_scores(url)
    assert set(stored) == set(by_grade) == {"alice", "bob", "carol"}
    for student, (score, max_score, _) in stored.items():
        assert (score, max_score) == (float(by_grade[student][2]), float(by_grade[student][3])), student
    assert stored["alice"][0] == stored["alice"][1] > 0, stored["alice"]
    assert stored["bob"][0] < stored["bob"][1], stored["bob"]
    assert stored["carol"][0] == 0 and by_grade["carol"][4] == "invalid", by_grade["carol"]
    exported = csv_rows(first)
    assert {s: float(exported[s][1]) for s in stored} == {s: v[0] for s, v in stored.items()}

    postgres.stop()
    assert not postgres.running()
    postgres.start()
    assert gradebook_scores(url) == stored, "grades changed across a restart of the server"
    second = tmp_path / "second.csv"
    kit("export", "--course", root, "--to", second, env={"LABKIT_GRADEBOOK": url})
    assert second.read_text() == first.read_text(), "the export changed across a restart of the server"

    # From now on the course folder names the database (course.toml, no password), for nbgrader's tools too.
    (root / "course.toml").write_text(settings + f'\n[database]\nurl = "{url}"\n')
    cell, (auto, _manual) = next((name, scores) for name, scores in sorted(stored["bob"][2].items())
                                 if scores[0] == 0)
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url(url)) as gb:
        points = gb.find_grade(cell, LAB, LAB, "bob").max_score
    assert points > 0, cell
    done = subprocess.run([sys.executable, "-c", FORMGRADER, LAB, cell, "bob", str(points)], cwd=root,
                          env={k: v for k, v in tool_env().items() if k != "LABKIT_GRADEBOOK"},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"nbgrader's formgrader API failed in {root}:\n{done.stderr[-3000:]}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["db_url"] == f"postgresql+psycopg://{GRADER}@127.0.0.1:{postgres.port}/{DATABASE}", seen
    assert {s: v[0] for s, v in seen["listed"].items()} == {s: v[0] for s, v in stored.items()}, seen
    assert seen["listed"]["bob"][1] == stored["bob"][1], seen  # (carol's is 0 there: nothing was autograded)

    kit("grade", LAB, "--course", root, "--force")  # graded again, with course.toml's gradebook
    stamps = [json.loads(p.read_text()) for p in (root / ".autograder" / "labs").rglob("in-gradebook.json")]
    assert len(stamps) == 1 and len(stamps[0]) == 1, f"one database, stamped once whatever its password: {stamps}"
    again = gradebook_scores(url)
    assert again["bob"][2][cell] == (0, points), "grade overwrote the TA's manual grade"
    assert again["bob"][0] == stored["bob"][0] + points, (again["bob"], stored["bob"])
    assert {s: again[s][:2] for s in ("alice", "carol")} == {s: stored[s][:2] for s in ("alice", "carol")}
    bob = csv_rows(root / "grades" / f"{LAB}.csv")["bob"]
    assert float(bob[2]) == stored["bob"][0] + points and bob[5].startswith("includes manual grades"), bob
    kit("feedback", LAB, "--course", root)
    assert all((root / "feedback" / s / LAB / f"{LAB}.html").exists() for s in ("alice", "bob", "carol"))
    third = tmp_path / "third.csv"
    kit("export", "--course", root, "--to", third)
    rows = csv_rows(third)
    assert float(rows["bob"][1]) == stored["bob"][0] + points, rows["bob"]
    assert {s: rows[s] for s in ("alice", "carol")} == {s: exported[s] for s in ("alice", "carol")}
    assert not (root / "gradebook.db").exists()


# ---------------------------------------------------------------- the URL, without a server

def test_a_password_in_course_toml_is_refused(tmp_path):
    path = tmp_path / "course.toml"
    base = (ROOT / "course.toml").read_text()
    path.write_text(base + '\n[database]\nurl = "postgresql://grader:s3cret@db.example.edu/dl2027"\n')
    with pytest.raises(SettingsError, match=r"holds a password.*pgpass.*LABKIT_GRADEBOOK"):
        load_settings(path)
    path.write_text(base + '\n[database]\nurl = "postgresql://grader@db.example.edu/dl2027"\n')
    assert load_settings(path).database_url == "postgresql://grader@db.example.edu/dl2027"
    path.write_text(base + '\n[database]\nurl = "db.example.edu"\n')
    with pytest.raises(SettingsError, match=r"must be an SQLAlchemy URL"):
        load_settings(path)


def test_the_gradebook_url_in_order_normalised_and_its_driver_checked(tmp_path, monkeypatch):
    monkeypatch.delenv("LABKIT_GRADEBOOK", raising=False)
    (tmp_path / "course.toml").write_text((ROOT / "course.toml").read_text()
                                          + '\n[database]\nurl = "postgres://grader@db.example.edu/dl2027"\n')
    assert Course(tmp_path).db_url == "postgresql+psycopg://grader@db.example.edu/dl2027"  # course.toml
    monkeypatch.setenv("LABKIT_GRADEBOOK", "postgresql://ta:pw@db.example.edu:5433/dl2027?sslmode=require")
    course = Course(tmp_path)
    assert course.db_url == "postgresql+psycopg://ta:pw@db.example.edu:5433/dl2027?sslmode=require"
    assert course.db_shown == "postgresql+psycopg://ta:***@db.example.edu:5433/dl2027?sslmode=require"
    assert Course(tmp_path, "sqlite:////srv/gb.db").db_url == "sqlite:////srv/gb.db"  # --db first
    monkeypatch.delenv("LABKIT_GRADEBOOK")
    assert Course(tmp_path / "elsewhere").db_url == f"sqlite:///{(tmp_path / 'elsewhere').resolve()}/gradebook.db"
    psycopg2 = "postgresql+psycopg2://grader@db.example.edu/dl2027"  # a driver the kit does not install
    if importlib.util.find_spec("psycopg2") is None:
        with pytest.raises(SystemExit, match=r"driver 'postgresql\+psycopg2'.*pip install psycopg2-binary"):
            gradebook_url(psycopg2)
    else:
        assert gradebook_url(psycopg2) == psycopg2
    with pytest.raises(SystemExit, match=r"knows no database 'nosuchdb'"):
        gradebook_url("nosuchdb://grader@db.example.edu/dl2027")
    with pytest.raises(SystemExit, match=r"is not an SQLAlchemy URL"):
        gradebook_url("db.example.edu/dl2027")

"""nbgrader's own tools with the kit's settings: the repository's nbgrader_config.py and a course folder's.

Loaded as nbgrader loads it (from the folder it starts in), the file maps nbgrader's source and
release to solutions/ and notebooks/ and takes course.toml's limits; `nbgrader validate` runs Lab 1
(with a 31 s cell) from the repository root within the course's cell limit; in a course folder the kit set up (collect
and grade of Lab 1, a solution and a half-done copy), `nbgrader autograde` runs the kit's sandboxed
steps and gives the scores `grade` gave, and `nbgrader generate_feedback` writes the kit's redacted
pages; and in a real browser the formgrader lists the five labs, opens an autograded submission and
takes a manual grade that `python -m autograder export` then reports.
"""
import csv
import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from editions import half_done

from autograder import ROOT, labs, nbgrader, solution_notebook, tool_env
from autograder.course import Course
from autograder.feedback import secret_lines
from autograder.nbgrader_course import FILE_NAME, MARK, config_text, ensure_config
from autograder.settings import load as load_settings

LAB = "01_xor"  # the quickest lab to grade
ARTIFACTS = ROOT / "test-artifacts" / "browser"

# What nbgrader sees, loaded as its apps load it (the Validate button's handler, the formgrader: the
# config files of the folder they start in): printed as JSON by a fresh Python started there.
LOADED = r"""
import json, os
from nbgrader.api import Gradebook
from nbgrader.apps import NbGrader
from nbgrader.apps.api import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from nbgrader.validator import Validator

app = NbGrader()
app.load_config_file()
cfg = app.config
coursedir = CourseDirectory(config=cfg)
validator = Validator(config=cfg)
print(json.dumps({
    "root": coursedir.root,
    "source": os.path.normpath(coursedir.format_path(coursedir.source_directory, ".", "01_xor")),
    "release": os.path.normpath(coursedir.format_path(coursedir.release_directory, ".", "01_xor")),
    "db_url": coursedir.db_url,
    "validate_timeout": Execute(parent=validator).timeout,
    "autograde": [c.__name__ for c in cfg.Autograde.autograde_preprocessors],
    "sanitize": [c.__name__ for c in cfg.Autograde.sanitize_preprocessors],
    "feedback": [c.__name__ for c in cfg.GenerateFeedback.preprocessors],
    "limits": dict(cfg.AutogradeExecute.limits),
    "sandboxed_timeout": cfg.SandboxedExecute.timeout,
    "stub": cfg.ClearSolutions.code_stub["python"],
    "formgrader_labs": sorted(NbGraderAPI(coursedir=coursedir, config=cfg).get_source_assignments()),
}))
"""


def loaded(folder: Path) -> dict:
    """nbgrader's configuration as its tools load it in ``folder``."""
    done = subprocess.run([sys.executable, "-c", LOADED], cwd=folder, env=tool_env(), capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, f"nbgrader could not load the configuration of {folder}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def kit(*args, check=True) -> subprocess.CompletedProcess:
    """`python -m autograder ARGS`, as an instructor runs it."""
    env = dict(tool_env(), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    if check:
        assert done.returncode == 0, f"python -m autograder {' '.join(map(str, args))} failed:\n" \
                                     f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def csv_rows(path: Path) -> dict:
    with open(path, newline="") as f:
        return {row[0]: row for row in csv.reader(f)}


def leaked(text: str, hidden: set) -> list:
    """Hidden-test lines found in a page, as written or once its HTML escapes are undone."""
    plain = html.unescape(text)
    return [line for line in hidden if line in text or line in plain]


# ---------------------------------------------------------------- the configuration, as nbgrader loads it

def test_the_repository_file_is_the_one_the_kit_writes():
    path = ROOT / FILE_NAME
    assert path.read_text() == config_text(ROOT), \
        f"{path} is not what the kit writes: regenerate it with `python -m autograder.nbgrader_course {ROOT}` " \
        "after deleting it"
    assert ensure_config(Course(ROOT)) is None
    assert path.read_text() == config_text(ROOT)


def test_nbgrader_at_the_repository_root_uses_the_kits_settings():
    got = loaded(ROOT)
    settings = load_settings(ROOT / "course.toml")
    assert got["root"] == str(ROOT)
    assert got["source"] == str(ROOT / "solutions" / "01_xor") and got["release"] == str(ROOT / "notebooks" / "01_xor")
    assert got["db_url"] == f"sqlite:///{ROOT / 'gradebook.db'}"
    assert got["validate_timeout"] == settings.cell_timeout != 30  # nbgrader's own default is 30 s
    assert got["sandboxed_timeout"] == settings.cell_timeout
    assert got["limits"]["cell_timeout"] == settings.cell_timeout
    assert got["limits"]["notebook_timeout"] == settings.notebook_timeout
    assert got["limits"]["memory_mb"] == settings.memory_mb and got["limits"]["threads"] == settings.threads
    assert got["autograde"][:4] == ["NewRun", "ProtectTests", "AutogradeExecute", "RestoreTests"], got["autograde"]
    assert "RestoreCellMetadata" in got["sanitize"]
    assert got["feedback"][0] == "RedactForFeedback"
    assert got["stub"].startswith("raise NotImplementedError()")
    assert got["formgrader_labs"] == labs()  # formgrader's assignments: the five labs, no second source/


def test_a_course_folder_gets_its_own_file_with_its_own_limits(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    toml = (ROOT / "course.toml").read_text().replace("cell_timeout = 300", "cell_timeout = 123")
    assert "cell_timeout = 123" in toml
    (course / "course.toml").write_text(toml)
    assert ensure_config(Course(course)) is None
    text = (course / FILE_NAME).read_text()
    assert MARK in text and str(ROOT) in text
    got = loaded(course)
    assert got["root"] == str(course)
    # no solutions/ of its own: the kit's labs, as Course.solutions says
    assert got["source"] == str(ROOT / "solutions" / "01_xor") and got["release"] == str(ROOT / "notebooks" / "01_xor")
    assert got["db_url"] == f"sqlite:///{course / 'gradebook.db'}"
    assert got["validate_timeout"] == got["sandboxed_timeout"] == got["limits"]["cell_timeout"] == 123
    assert got["formgrader_labs"] == labs()

    own = tmp_path / "own"
    shutil.copytree(ROOT / "solutions" / LAB, own / "solutions" / LAB)
    ensure_config(Course(own))
    got = loaded(own)
    assert got["source"] == str(own / "solutions" / LAB) and got["formgrader_labs"] == [LAB]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / FILE_NAME).write_text("c = get_config()\nc.CourseDirectory.root = '.'\n")
    note = ensure_config(Course(foreign))
    assert note and "not the kit's" in note and "load_subconfig" in note
    assert (foreign / FILE_NAME).read_text() == "c = get_config()\nc.CourseDirectory.root = '.'\n"


# ---------------------------------------------------------------- nbgrader validate from the repository root

def test_validate_passes_from_the_repository_root_within_the_course_cell_limit(tmp_path):
    """Students' Validate from the repository root: Lab 1's solution, with one more cell that runs 31 s, longer
    than nbgrader's own 30 s cell limit (the course's limit, course.toml [limits] cell_timeout, applies)."""
    nb = solution_notebook("01_xor")
    nb.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(31)  # longer than nbgrader's default limit"))
    (tmp_path / "01_xor").mkdir()
    nbformat.write(nb, tmp_path / "01_xor" / "01_xor.ipynb")
    env = dict(tool_env(), OMP_NUM_THREADS="1")  # as autograder.nbgrader (validate takes no --log-level)
    done = subprocess.run([sys.executable, "-m", "nbgrader", "validate", str(tmp_path / "01_xor" / "01_xor.ipynb")],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Success! Your notebook passes all the tests." in done.stdout, \
        f"nbgrader validate of Lab 1's solution (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    assert "timeout" not in (done.stdout + done.stderr).lower()
    assert load_settings(ROOT / "course.toml").cell_timeout > 31


# ---------------------------------------------------------------- a course folder set up by the kit

PROBE = """import os
print("HOME", os.environ.get("HOME"))
print("SECRET", os.environ.get("LABKIT_PROBE_SECRET"))
print("GRADEBOOK", os.path.exists({gradebook!r}))
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A course folder: Lab 1 collected and graded by the kit (alice: the solution, with a cell that looks
    at its surroundings; bob: a half-done copy), and the kit's feedback."""
    base = tmp_path_factory.mktemp("nbgrader-tools")
    root = base / "course"
    root.mkdir()
    # lms = none: the export below is the generic table, whatever the default LMS
    (root / "course.toml").write_text((ROOT / "course.toml").read_text().replace('lms = "canvas"', 'lms = "none"'))
    download = base / "download"
    alice = solution_notebook(LAB)
    alice.cells.append(nbformat.v4.new_code_cell(PROBE.format(gradebook=str(root / "gradebook.db"))))
    for student, nb in {"alice": alice, "bob": half_done(LAB)}.items():
        (download / student).mkdir(parents=True)
        nbformat.write(nb, download / student / f"{LAB}.ipynb")
    kit("collect", LAB, download, "--course", root)
    assert (root / FILE_NAME).read_text() == config_text(root), "collect did not write the course's nbgrader config"
    kit("grade", LAB, "--course", root)
    kit("feedback", LAB, "--course", root)
    return root


def copy_course(graded: Path, tmp_path: Path) -> Path:
    root = tmp_path / "course"
    shutil.copytree(graded, root, symlinks=True)
    return root


def test_nbgrader_autograde_runs_the_kits_sandbox_and_scores_as_grade(graded, sandbox, tmp_path, monkeypatch):
    root = copy_course(graded, tmp_path)
    by_grade = csv_rows(root / "grades" / f"{LAB}.csv")
    assert by_grade["alice"][2] == by_grade["alice"][3] and 0 < float(by_grade["bob"][2]) < float(by_grade["bob"][3])
    monkeypatch.setenv("LABKIT_PROBE_SECRET", "the grader's own environment")
    done = nbgrader("autograde", LAB, "--force", cwd=root)  # the course folder's nbgrader_config.py, nothing else
    log = done.stdout + done.stderr
    assert "NOT SANDBOXED" not in log, log[-3000:]

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in ("alice", "bob"):
            submission = gb.find_submission(LAB, student)
            assert (submission.score, submission.max_score) == (float(by_grade[student][2]),
                                                                float(by_grade[student][3])), student
    graded_nb = nbformat.read(root / "autograded" / "alice" / LAB / f"{LAB}.ipynb", as_version=4)
    seen = "".join(o.get("text", "") for o in graded_nb.cells[-1].outputs)
    assert "HOME /home/student" in seen, seen  # the sandbox's home, not the instructor's
    assert "SECRET None" in seen, seen          # none of the grader's environment
    assert "GRADEBOOK False" in seen, seen      # the course folder does not exist in there
    sources = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution_notebook(LAB).cells
               if c.metadata.get("nbgrader", {}).get("grade")}
    for cell in graded_nb.cells:  # the harness's calls were put back into the lab's tests (RestoreTests)
        name = cell.metadata.get("nbgrader", {}).get("grade_id")
        if name in sources and cell.cell_type == "code":
            assert "__labkit_grader__" not in cell.source and cell.source.strip() == sources[name].strip(), name


def test_nbgrader_generate_feedback_writes_the_kits_redacted_pages(graded, tmp_path):
    root = copy_course(graded, tmp_path)
    hidden = secret_lines(solution_notebook(LAB))
    assert hidden, "Lab 1 has hidden tests: the check below would prove nothing without them"
    kits = {s: (root / "feedback" / s / LAB / f"{LAB}.html").read_text() for s in ("alice", "bob")}
    nbgrader("generate_feedback", LAB, "--force", cwd=root)
    for student, page in kits.items():
        path = root / "feedback" / student / LAB / f"{LAB}.html"
        text = path.read_text()
        assert not leaked(text, hidden), f"{path} shows hidden test lines: {leaked(text, hidden)[:3]}"
        assert text == page, f"nbgrader generate_feedback wrote another page than `python -m autograder feedback` " \
                             f"for {student}"
        assert f"Feedback: {LAB}, {student}" in text and "(hidden tests run by the grader are not shown)" in text

    shutil.rmtree(root / ".autograder" / "records")  # graded by nbgrader alone: no record of the kit's grader
    nbgrader("generate_feedback", LAB, "--force", cwd=root)
    for student in ("alice", "bob"):
        text = (root / "feedback" / student / LAB / f"{LAB}.html").read_text()
        assert not leaked(text, hidden), leaked(text, hidden)[:3]
        assert "graded by nbgrader autograde" in text and "(hidden tests run by the grader are not shown)" in text


# ---------------------------------------------------------------- the formgrader in a real browser

def test_formgrader_lists_the_labs_and_takes_a_manual_grade_that_export_reports(graded, tmp_path):
    from lab_server import chromium, jupyterlab, require_chromium, wait_until
    from nbgrader.api import Gradebook

    require_chromium()

    root = copy_course(graded, tmp_path)
    db = f"sqlite:///{root / 'gradebook.db'}"
    with Gradebook(db) as gb:
        notebook = gb.find_submission_notebook(LAB, LAB, "bob")
        auto = {g.name: (g.auto_score, g.max_score) for g in notebook.grades if g.cell.cell_type == "code"}
        before = notebook.score
    cell = next(name for name, (score, points) in sorted(auto.items()) if score == 0 and points > 0)
    manual = auto[cell][1]  # full marks for a test the autograder scored 0

    (root / ".jupyter" / "labconfig").mkdir(parents=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with jupyterlab(root, tmp_path / "jupyterlab.log", env={"JUPYTER_CONFIG_DIR": str(root / ".jupyter")},
                    cwd=root,  # started in the course folder: the formgrader reads its nbgrader_config.py
                    args=["--LabApp.news_url=None",
                          "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]) as server:
        base, token = server.base, server.token
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/formgrader/manage_assignments?token={token}")
            wait_until(lambda: all(lab in page.inner_text("body") for lab in labs()), 60,
                       f"the formgrader to list {', '.join(labs())}")
            page.screenshot(path=str(ARTIFACTS / "formgrader-assignments.png"))
            body = page.inner_text("body")
            assert "not a subdirectory" not in body and "Loading, please wait" not in body

            page.goto(f"{base}/formgrader/gradebook/{LAB}/{LAB}")
            link = page.locator("a.name-shown", has_text="bob")
            link.wait_for(state="attached", timeout=60_000)
            assert page.locator("a.name-shown", has_text="alice").count() == 1
            href = link.get_attribute("href")
            page.goto(f"{base}{href}" if href.startswith("/") else href)
            box = page.locator(f"input.score#{cell}")
            box.wait_for(timeout=60_000)
            wait_until(lambda: box.get_attribute("placeholder") not in (None, ""), 30,
                       "the submission's autograded scores")
            assert float(box.get_attribute("placeholder")) == 0, box.get_attribute("placeholder")
            box.fill(str(int(manual) if float(manual).is_integer() else manual))
            box.press("Tab")  # the change event saves the grade

            def saved():
                with Gradebook(db) as gb:
                    grade = gb.find_grade(cell, LAB, LAB, "bob")
                    return grade.manual_score is not None and float(grade.manual_score) == float(manual)
            wait_until(saved, 60, f"the formgrader to save the manual grade of {cell}")
            page.screenshot(path=str(ARTIFACTS / "formgrader-manual-grade.png"))

    out = tmp_path / "all_labs.csv"
    kit("export", "--course", root, "--to", out)
    rows = csv_rows(out)
    column = rows["student"].index(LAB)
    assert float(rows["bob"][column]) == before + manual, (rows["bob"], before, manual)
    assert float(rows["alice"][column]) == float(rows["Points Possible"][column])

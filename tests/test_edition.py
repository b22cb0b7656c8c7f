"""What students get: the course settings stamped into every lab, and the student edition.

The edition is published into a temporary folder (with the kit's course.toml, or a changed
copy), checked for its files, for solution and hidden-test text (as token sequences, so
reformatting does not hide a leak) and for reproducibility; then it is pip-installed into a
fresh venv, where a lab with the solution's answers passes its visible tests, the hand-in
check reports passing, failing and unrun tests, and JupyterLab hides nbgrader's instructor
tools and the Jupyter news prompt.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from editions import kernelspec, leaks, publish_edition, settings_file, text_output, with_answers
from lab_server import jupyterlab
from nbclient import NotebookClient

from autograder import ROOT, labs, solution_notebook, tool_env
from autograder.collect import Entry, map_entry
from autograder.publish import HIDDEN_LAB_PLUGINS, HIDDEN_SERVER_EXTENSIONS
from autograder.release import release, unstamped_labs
from autograder.settings import SettingsError, load
from autograder.stamp import CHECK, HEADER, SETUP, SUBMIT, graded_test_line, graded_tests
from autograder.vocabulary import MARKERS, regions

LABS = labs()


def tree(folder: Path) -> dict:
    """{relative path: bytes} of every file, .git and pip's build leftovers aside."""
    skip = {".git", "build", "__pycache__"}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not skip & set(p.relative_to(folder).parts) and ".egg-info" not in str(p)}


def run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


# ---------------------------------------------------------------------------- the course settings

@pytest.mark.parametrize("changes, words", [
    ({"ref": "main"}, "is a branch, which moves"),
    ({"pip": "labkit-course @ git+https://github.com/x/y"}, "is not pinned"),
    ({"pip": "labkit-course @ git+https://github.com/x/y@master"}, "pinned to the branch 'master'"),
    ({"pip": "labkit @ git+https://github.com/x/y@v1"}, "the PyPI project 'labkit' is somebody else's"),
    ({"pip": "labkit-course>=0.1"}, "does not pin one edition"),
    ({"example_id": "alice smith"}, "does not match student_id"),
    ({"student_id": "[0-9"}, "student_id is not a regular expression"),
    ({"file": "{lab}_{student_id}.ipynb"}, "file must start with {student_id}"),
    ({"lms": "blackboard"}, "lms must be one of canvas, moodle, none"),
    ({"cell_timeout": "300"}, "cell_timeout must be int"),
    ({"cell_timeout": 0}, "cell_timeout must be positive"),
    ({"repository": "github.com/x/y"}, "repository must be the URL of a git repository"),
])
def test_a_mistake_in_the_settings_is_named_with_what_to_do(tmp_path, changes, words):
    with pytest.raises(SettingsError) as error:
        load(settings_file(tmp_path, **changes))
    assert words in str(error.value) and "course.toml" in str(error.value), str(error.value)


def test_an_unknown_key_is_refused_with_the_known_ones(tmp_path):
    path = settings_file(tmp_path)
    path.write_text(path.read_text().replace("[limits]", "[limits]\ncell_timeot = 30"))
    with pytest.raises(SettingsError, match=r"unknown key 'cell_timeot' in \[limits\]: expected one of cell_timeout"):
        load(path)


@pytest.mark.parametrize("pip", [
    "labkit-course==0.1.0",
    "labkit-course @ git+https://github.com/x/y@2027.1",
    "labkit_course @ git+ssh://git@github.com/x/y@0123abc",
    "https://example.edu/dl/labkit_course-0.1.0-py3-none-any.whl",
])
def test_pinned_installs_are_accepted(tmp_path, pip):
    assert load(settings_file(tmp_path, pip=pip)).pip == pip


def test_every_lab_carries_the_course_settings():
    assert unstamped_labs() == [], "solutions/ do not carry course.toml's settings: run `make release` and commit"
    settings = load()
    for lab in LABS:
        nb = solution_notebook(lab)
        assert HEADER in nb.cells[0].metadata.get("tags", []) and settings.colab_url(lab) in nb.cells[0].source
        setup = next(c for c in nb.cells if c.cell_type == "code")
        assert SETUP in setup.metadata.get("tags", []) and f'LABKIT_PIP = "{settings.pip}"' in setup.source
        assert [c.metadata.get("tags") for c in nb.cells[-2:]] == [[SUBMIT], [CHECK]]


def test_a_changed_setting_reaches_every_notebook(tmp_path):
    """Changing course.toml and releasing again is the whole procedure: every value lands in every lab."""
    settings = load(settings_file(
        tmp_path, name="Deep Learning 101", term="Fall 2031", repository="https://github.com/uni-x/dl101-labs",
        ref="fall-2031", student_id="[0-9]{8}", example_id="20311234", file="{student_id}-{lab}.ipynb",
        lms="moodle"))
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    release(LABS, release_dir=tmp_path / "release", settings=settings, solutions=tmp_path / "solutions")
    old = load()
    for lab in LABS:
        for path in (tmp_path / "solutions" / lab / f"{lab}.ipynb", tmp_path / "release" / lab / f"{lab}.ipynb"):
            nb = nbformat.read(path, as_version=4)
            text = "\n".join(cell.source for cell in nb.cells)
            header = nb.cells[0].source
            assert f"https://colab.research.google.com/github/uni-x/dl101-labs/blob/fall-2031/notebooks/{lab}/" \
                   f"{lab}.ipynb" in header and "Deep Learning 101, Fall 2031" in header
            assert 'LABKIT_PIP = "labkit-course @ git+https://github.com/uni-x/dl101-labs@fall-2031"' in text
            submit, check = nb.cells[-2].source, nb.cells[-1].source
            assert f"`<your student id>-{lab}.ipynb`" in submit and f"`20311234-{lab}.ipynb`" in submit
            assert "on Moodle" in submit
            listed = {m[1]: float(m[2]) for m in re.finditer(r'"(\w+)": ([\d.]+)', check)}
            assert listed == graded_tests(solution_notebook(lab)) and f'lk.check_lab("{lab}", ' in check
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                if meta.get("grade"):
                    assert cell.source.split("\n")[0] == graded_test_line(meta["grade_id"], meta["points"])
            for stale in (old.ref, old.repository, old.name, old.term, old.example_id):
                assert stale not in text, f"{path}: still says {stale!r}"


def test_collect_finds_students_by_the_settings_rule(tmp_path):
    settings = load(settings_file(tmp_path, student_id="[0-9]{7}", example_id="2027001",
                                  file="{student_id}-{lab}.ipynb"))
    mapped = map_entry(Entry("2027001-03_mlp (1).ipynb", None, 0, None), "03_mlp", LABS, None, None, settings)
    assert mapped == ("2027001", None)
    student, problem = map_entry(Entry("s1234567_03_mlp.ipynb", None, 0, None), "03_mlp", LABS, None, None, settings)
    assert student is None and "expected <your student id>-03_mlp.ipynb, e.g. 2027001-03_mlp.ipynb" in problem


# ---------------------------------------------------------------------------- the student edition

@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    return publish_edition(tmp_path_factory.mktemp("first") / "edition")


def test_the_edition_holds_what_students_need_and_nothing_else(edition):
    expected = {"README.md", "LICENSE", ".gitignore", "pyproject.toml", "requirements.txt", "constraints.txt",
                "environment.yml", "jupyter-config/labconfig/page_config.d/labkit-course.json",
                "jupyter-config/jupyter_server_config.d/zz-labkit-course.json", "jupyter-config/nbgrader_config.json",
                "labkit/reference/05_lenet.json",
                *(f"labkit/{p.name}" for p in (ROOT / "labkit").glob("*.py")),
                *(f"notebooks/{lab}/{lab}.ipynb" for lab in LABS)}
    assert set(tree(edition)) == expected


def test_the_edition_shows_no_solution_and_no_hidden_test(edition):
    found = leaks(edition)
    assert not found, f"{len(found)} pieces of solutions or hidden tests in the edition, e.g. {found[:5]}"
    for name, body in tree(edition).items():
        text = body.decode(errors="replace")
        assert not any(marker in text for marker in MARKERS), name


def test_the_leak_search_finds_a_solution_however_it_is_written(tmp_path):
    """The search itself must fail on a leak: a solution re-spaced, split over lines, and a hidden test."""
    nb = solution_notebook("02_softmax")
    answer = next(regions(c.source)[0][0] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") ==
                  "softmax")
    hidden = next(regions(c.source)[0][0] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") ==
                  "test_softmax")
    squeezed = re.sub(r"\s*([=(),.])\s*", r"\1", answer)            # exps=torch.exp(z-z.max(dim=1,...
    split = answer.replace("(", "(\n        ")                        # every call broken over two lines
    (tmp_path / "a.py").write_text(squeezed)
    (tmp_path / "b.md").write_text(split)
    (tmp_path / "c.txt").write_text(hidden.splitlines()[-1])
    found = {name for name, lab, _ in leaks(tmp_path)}
    assert found == {"a.py", "b.md", "c.txt"}, found


def test_publishing_again_gives_a_byte_identical_tree(edition, tmp_path):
    again = publish_edition(tmp_path / "edition")
    assert tree(again) == tree(edition)
    # Over an earlier edition: its .git and a venv's build leftovers stay, a lab that is gone is removed.
    (again / ".git").mkdir()
    (again / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (again / "build" / "lib").mkdir(parents=True)
    (again / "notebooks" / "09_old").mkdir()
    (again / "notebooks" / "09_old" / "09_old.ipynb").write_text("{}")
    publish_edition(again)
    assert tree(again) == tree(edition)
    assert (again / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n" and (again / "build" / "lib").is_dir()


def test_publish_refuses_a_folder_that_is_not_an_edition_and_touches_nothing(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "README.md").write_text("my thesis\n")
    (folder / "chapter1.tex").write_text("\\chapter{One}\n")
    with pytest.raises(SystemExit, match="chapter1.tex"):
        publish_edition(folder)
    assert (folder / "README.md").read_text() == "my thesis\n" and len(list(folder.iterdir())) == 2


def test_the_edition_package_needs_only_what_students_use(edition):
    project = tomllib.loads((edition / "pyproject.toml").read_text())["project"]
    assert project["name"] == "labkit-course"
    names = {re.match(r"[\w-]+", r)[0] for r in project["dependencies"]}
    assert names == {"torch", "numpy", "matplotlib", "ipywidgets", "tqdm", "filelock"}
    assert project["optional-dependencies"] == {"lab": ["jupyterlab>=4", "ipykernel>=6"]}
    for name in ("pyproject.toml", "requirements.txt", "environment.yml"):
        text = (edition / name).read_text()
        # (the one mention allowed: the data file that gives students' Validate the course's cell limit)
        assert not re.search(r"nbgrader(?!_config\.json)|playwright|pytest|grader,dev", text), name


def test_students_validate_runs_within_the_course_cell_limit(edition, tmp_path):
    """nbgrader's Validate, where a student has nbgrader, reads the edition's nbgrader_config.json from the
    environment's etc/jupyter (where pip installs jupyter-config/): the course's cell limit, not 30 s."""
    data = tomllib.loads((edition / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    assert data["etc/jupyter"] == ["jupyter-config/nbgrader_config.json"], data
    script = ("from nbgrader.apps import NbGrader\nfrom nbgrader.preprocessors import Execute\n"
              "from nbgrader.validator import Validator\napp = NbGrader()\napp.load_config_file()\n"
              "print(Execute(parent=Validator(config=app.config)).timeout)\n")
    env = dict(tool_env(), JUPYTER_CONFIG_PATH=str(edition / "jupyter-config"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "user-config"))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip().splitlines()[-1]) == load().cell_timeout != 30


def test_the_student_readme_says_how_to_open_check_and_hand_in(edition):
    settings, text = load(), (edition / "README.md").read_text()
    for lab in LABS:
        assert settings.colab_url(lab) in text and f"`<your student id>_{lab}.ipynb`" in text
    assert f"git clone --branch {settings.ref} {settings.repository}" in text
    assert "pip install -r requirements.txt" in text and "jupyter lab notebooks" in text
    assert "Check and hand in" in text and "Canvas" in text


# ---------------------------------------------------------------------------- installed, as a student does

@pytest.fixture(scope="module")
def student_venv(edition, tmp_path_factory):
    """A fresh venv with the edition installed from its folder as its README says (requirements.txt)."""
    root = tmp_path_factory.mktemp("student")
    shutil.copytree(edition, root / "clone")  # pip writes build/ into the folder it installs
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "-r", "requirements.txt"], cwd=root / "clone")
    return venv


def installed(venv: Path) -> set:
    lines = run([venv / "bin" / "python", "-m", "pip", "list", "--format=json"]).stdout
    return {package["name"].lower() for package in json.loads(lines)}


def test_installing_the_edition_brings_no_instructor_tools(student_venv):
    packages = installed(student_venv)
    assert {"labkit-course", "torch", "jupyterlab", "ipykernel"} <= packages
    assert not packages & {"nbgrader", "pytest", "playwright", "ruff"}, packages & {"nbgrader", "pytest", "playwright"}
    where = run([student_venv / "bin" / "python", "-c", "import labkit; print(labkit.__file__)"], cwd="/").stdout
    assert str(student_venv) in where


def execute_in(venv: Path, nb, tmp_path: Path, **kwargs):
    home = kernelspec(tmp_path / "jupyter", "student", venv / "bin" / "python")
    env = {"JUPYTER_PATH": home, "LABKIT_QUICK": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=300, kernel_name="student", resources={"metadata": {"path": str(tmp_path)}},
                       **kwargs).execute()
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    return nb


def check_table(nb) -> dict:
    """{test id: status} from the text the hand-in check printed (the lab's last cell)."""
    text = text_output(nb.cells[-1])
    rows = re.finditer(r"^  (?P<status>passed|FAILED|not run)\s+(?P<id>\S+)", text, re.M)
    return {m["id"]: m["status"] for m in rows}


@pytest.mark.parametrize("lab", ["01_xor", "02_softmax"])
def test_a_released_lab_with_the_answers_passes_its_visible_tests_in_the_edition(student_venv, edition, tmp_path,
                                                                                 lab):
    nb = with_answers(nbformat.read(edition / "notebooks" / lab / f"{lab}.ipynb", as_version=4),
                      solution_notebook(lab))
    execute_in(student_venv, nb, tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[:1]
    tests = graded_tests(nb)
    assert check_table(nb) == {grade_id: "passed" for grade_id in tests}
    assert f"{len(tests)} of {len(tests)} graded tests pass in this kernel" in text_output(nb.cells[-1])


def test_the_hand_in_check_tells_passed_failed_and_unrun_tests_apart(student_venv, edition, tmp_path):
    """Lab 1 with only the perceptron answered, and one test cell never run."""
    nb = with_answers(nbformat.read(edition / "notebooks" / "01_xor" / "01_xor.ipynb", as_version=4),
                      solution_notebook("01_xor"), grade_ids={"perceptron"})
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_iterations_per_epoch"]
    execute_in(student_venv, nb, tmp_path, allow_errors=True)
    tests = list(graded_tests(solution_notebook("01_xor")))
    expected = {grade_id: "FAILED" for grade_id in tests}
    expected.update(test_perceptron="passed", test_iterations_per_epoch="not run")
    assert check_table(nb) == expected
    text = text_output(nb.cells[-1])
    assert "1 of 8 graded tests pass in this kernel (2 of 18 points); 6 failed, 1 not run" in text, text
    assert re.search(r"FAILED\s+test_and_or\s+2 points\s+NameError: name '\w+' is not defined", text), text
    assert "Hand in this notebook as <your student id>_01_xor.ipynb." in text


# ---------------------------------------------------------------------------- JupyterLab for students

def lab_page_config(python: Path, tmp_path: Path) -> tuple:
    """Start JupyterLab from ``python`` on 127.0.0.1; return (its page config, the status of /formgrader)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {"JUPYTER_CONFIG_DIR": str(tmp_path / "user-config"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    with jupyterlab(tmp_path, tmp_path / "lab.log", python=python, env=env, cwd=tmp_path) as server:
        page = urllib.request.urlopen(f"{server.base}/lab?token={server.token}", timeout=30).read().decode()
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page, re.S)[1])
        try:
            status = urllib.request.urlopen(f"{server.base}/formgrader?token={server.token}", timeout=10).status
        except urllib.error.HTTPError as error:
            status = error.code
        return config, status


def test_students_jupyterlab_hides_the_instructor_tools_and_the_news_prompt(student_venv, tmp_path):
    """As on a JupyterHub where nbgrader is installed for everyone: the edition's settings switch off its
    instructor parts (formgrader, Create Assignment, the courses list) and the news prompt; the instructor's
    own JupyterLab, without them, shows everything (so the check can tell)."""
    run([student_venv / "bin" / "python", "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
         "nbgrader"])
    config, formgrader = lab_page_config(student_venv / "bin" / "python", tmp_path / "student")
    assert set(HIDDEN_LAB_PLUGINS) <= set(config["disabledExtensions"]), config["disabledExtensions"]
    assert "@jupyter/nbgrader:assignment-list" not in config["disabledExtensions"]
    assert formgrader == 404 and HIDDEN_SERVER_EXTENSIONS[0].startswith("nbgrader")
    config, formgrader = lab_page_config(Path(sys.executable), tmp_path / "instructor")
    assert not set(HIDDEN_LAB_PLUGINS[:3]) & set(config["disabledExtensions"])
    assert formgrader in (200, 302)


def test_every_setting_is_documented():
    from autograder.settings import KEYS

    doc = (ROOT / "docs" / "student-edition.md").read_text()
    missing = [f"[{table}] {key}" for table, key in KEYS if f"| `[{table}]` | `{key}` |" not in doc]
    assert not missing, f"docs/student-edition.md does not explain {missing}"

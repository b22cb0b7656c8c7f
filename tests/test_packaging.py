"""The environment is defined once: pyproject ranges, one lock file, conda pointing at it."""
import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def pins() -> dict:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(pair) == 2 for pair in pairs), "every line of constraints.txt must be name==version"
    return {name.lower().replace("_", "-"): version for name, version in pairs}


def requirements() -> list:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + extras["grader"] + extras["dev"] + extras["cluster"]]


def test_every_dependency_is_pinned_within_its_range():
    locked = pins()
    for requirement in requirements():
        name = requirement.name.lower().replace("_", "-")
        assert name in locked, f"{name} is a dependency but has no pin in constraints.txt (run `make lock`)"
        assert requirement.specifier.contains(locked[name], prereleases=True), \
            f"constraints.txt pins {name}=={locked[name]}, outside pyproject's range {requirement.specifier}"


def test_torch_stays_at_2_13_0():
    assert pins()["torch"] == "2.13.0"


def test_ranges_accept_what_colab_ships():
    """Installing labkit on Colab must not upgrade its ipywidgets 7.7.x, torch or matplotlib."""
    ranges = {r.name: r.specifier for r in requirements()}
    assert ranges["ipywidgets"].contains("7.7.1") and ranges["ipywidgets"].contains("8.1.5")
    assert ranges["torch"].contains("2.5.1") and ranges["matplotlib"].contains("3.10.0")
    assert ranges["filelock"].contains("3.18.0")
    assert not any(r.name == "torchvision" for r in requirements()), "torchvision must stay optional"


def test_this_environment_is_the_locked_one():
    locked = pins()
    for name in ("torch", "numpy", "matplotlib", "ipywidgets", "tqdm", "nbgrader", "nbclient", "pytest"):
        installed = importlib.metadata.version(name).split("+")[0]
        assert installed == locked[name], f"{name} {installed} is installed but constraints.txt pins {locked[name]}"


def test_conda_environment_uses_the_same_lock():
    text = (ROOT / "environment.yml").read_text()
    body = [line.split("#")[0].strip() for line in text.splitlines()]
    assert "- -c constraints.txt" in body and "- -e .[grader,dev,cluster]" in body
    assert not [line for line in body if re.search(r"[<>=]=", line)], "no second list of versions"
    makefile = (ROOT / "Makefile").read_text()
    assert "EXTRAS := grader,dev,cluster" in makefile and "-c constraints.txt" in makefile


def test_ci_runs_make_test():
    commands = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert commands[-1] == "make test"


@pytest.mark.parametrize("target", ["lab", "test", "data", "setup", "release", "student-edition", "bench",
                                    "bench-course", "lab5-results", "lock"])
def test_readme_documents_make_targets(target):
    assert f"make {target}" in (ROOT / "README.md").read_text()
    assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.M)


def test_the_wheel_ships_the_recorded_lab_results(tmp_path):
    """Colab installs labkit from a wheel: Lab 5's recorded results must be inside it."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("labkit_course-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "labkit/reference/05_lenet.json" in names

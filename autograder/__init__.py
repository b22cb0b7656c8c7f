"""The instructor's pipeline around nbgrader: `python -m autograder <command>`."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = Path(__file__).resolve().parent  # holds nbgrader_config.py


def labs() -> list:
    """The lab ids in course order: every solutions/<lab>/<lab>.ipynb."""
    return sorted(p.parent.name for p in (ROOT / "solutions").glob("*/*.ipynb") if p.stem == p.parent.name)


def solution_notebook(lab: str):
    """The instructor source of ``lab`` (solutions/<lab>/<lab>.ipynb) as an nbformat notebook."""
    import nbformat

    return nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)


def tool_env() -> dict:
    """os.environ with this interpreter's bin folder first on PATH, for tools started by name
    (nbgrader's alembic, jupyter's helpers) from a venv that is not activated."""
    return dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def use_tool_path() -> None:
    """Put this interpreter's bin folder first on PATH in this process too: nbgrader's gradebook
    runs `alembic` by name."""
    os.environ["PATH"] = tool_env()["PATH"]


def nbgrader(*args, cwd=CONFIG_DIR) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` with this interpreter; raise RuntimeError with its output if it fails.

    It runs with ``tool_env()``, so it works from a venv that is not activated.
    Kernels it starts use one OpenMP thread unless OMP_NUM_THREADS says
    otherwise: notebooks graded side by side on a 2-core machine slow down
    tens of times when each spins two threads.
    """
    env = tool_env()
    env.setdefault("OMP_NUM_THREADS", "1")
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(map(str, args))} failed (exit {done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")
    return done

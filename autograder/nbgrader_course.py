"""nbgrader's own tools on a course folder, set up as the kit grades: the folder's ``nbgrader_config.py``.

nbgrader's command line (``nbgrader validate | autograde | generate_feedback ...``) and its
JupyterLab extension (the formgrader at /formgrader, students' Validate button) read
``nbgrader_config.py`` from the folder they are started in.  The repository's own file (the
kit's course folder is the repository root) and the file the kit writes into a course folder
elsewhere (``ensure_config``: `python -m autograder collect | grade | feedback | export
--course DIR` write it when it is missing) are the same few lines (``config_text``): they load
the kit's shared settings (``autograder/nbgrader_config.py``: the stubs students see, the
kit's layout) and then ``course_config`` of the folder they are in, which says:

- the layout: nbgrader's ``source`` is the course's lab sources (``<course>/solutions/``, or the
  kit's ``solutions/`` for a course folder without its own, as ``Course.solutions``), ``release``
  the student copies beside them (``notebooks/``), the gradebook the kit's (``$LABKIT_GRADEBOOK``,
  else course.toml's ``[database] url``, else ``<course>/gradebook.db``: ``Course.db_url``, so that the
  formgrader and ``grade`` share one gradebook, PostgreSQL's included);
- the limits of the course's ``course.toml`` ([limits]): ``Execute.timeout`` is its
  ``cell_timeout`` (``nbgrader validate``, the Validate button), and ``nbgrader autograde`` gets
  every limit the kit's ``grade`` uses;
- ``nbgrader autograde`` runs the kit's preprocessors (those of ``autograder.worker.autograde_config``,
  the one place they are listed), with each notebook's kernel in its own sandbox
  (``autograder.nbgrader_steps.AutogradeExecute``); where the sandbox does not work it warns and grades with resource
  limits only, as ``grade --sandbox auto`` does (``--AutogradeExecute.sandbox=full`` refuses
  instead, ``off`` skips it);
- ``nbgrader generate_feedback`` writes the kit's redacted feedback (``autograder.feedback``), the
  same pages as ``python -m autograder feedback``.

Quick mode needs nothing here: nbgrader sets ``NBGRADER_EXECUTION`` while it autogrades or
validates, which turns the labs' quick mode on (``labkit.mode``), as in ``grade``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from autograder import ROOT
from autograder.course import Course
from autograder.isolation import Limits

FILE_NAME = "nbgrader_config.py"
COURSE_ID = "default_course"  # nbgrader.api.Gradebook's default course id: the course of every assignment
MARK = "Written by labkit"  # how ensure_config recognises a file of its own (it never touches another)


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it is inside (nbgrader's links then work), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def layout(root) -> object:
    """The course folder's layout and cell limit, as a traitlets Config (the part release needs too)."""
    from traitlets.config import Config

    course = Course(root)
    c = Config()
    c.CourseDirectory.root = str(course.root)
    c.CourseDirectory.source_directory = _relative(course.solutions, course.root)
    c.CourseDirectory.release_directory = _relative(course.solutions.parent / "notebooks", course.root)
    # nbgrader's default course id is '', for which it never adds the course row its assignments refer to:
    # SQLite does not check that foreign key, PostgreSQL does (generate_assignment fails). nbgrader's
    # Gradebook's own default, which it does add, is the one the kit's commands use too.
    c.CourseDirectory.course_id = COURSE_ID
    # Validate (students' button, `nbgrader validate`) and any plain execution: the course's cell limit.
    c.Execute.timeout = course.settings.cell_timeout
    return c


def course_config(root) -> object:
    """Everything nbgrader's own tools need to work on the course folder ``root`` as the kit does."""
    from autograder.feedback import feedback_config

    course = Course(root)
    c = layout(course.root)
    if course.db_url != course.default_db_url:  # nbgrader's default is that one
        c.CourseDirectory.db_url = course.db_url
    c.merge(autograde_config(Limits.from_settings(course.settings)))
    c.merge(feedback_config())
    c.RedactForFeedback.course_root = str(course.root)
    return c


def autograde_config(limits: Limits) -> object:
    """`nbgrader autograde` as the kit's grading worker runs it: its preprocessors and limits, with
    ``AutogradeExecute`` (a sandbox per notebook) for the worker's ``SandboxedExecute``."""
    from autograder.nbgrader_steps import AutogradeExecute, NewRun
    from autograder.preprocessors import SandboxedExecute
    from autograder.worker import grading_steps

    c = grading_steps(limits)
    c.Autograde.autograde_preprocessors = [NewRun] + [AutogradeExecute if step is SandboxedExecute else step
                                                      for step in c.Autograde.autograde_preprocessors]
    c.AutogradeExecute.limits = limits.to_json()
    return c


def config_text(course_root) -> str:
    """The ``nbgrader_config.py`` of a course folder: the repository's own (the kit found from the file
    itself, so that a clone works anywhere) or, for a folder elsewhere, one that names this kit."""
    course_root = Path(course_root).resolve()
    kit = "Path(__file__).resolve().parent" if course_root == ROOT else f"Path({str(ROOT)!r})"
    return f'''"""nbgrader's settings for this course folder: nbgrader's command line and its JupyterLab extension
(formgrader, Validate) read this file from the folder they are started in.

{MARK} (autograder/nbgrader_course.py; docs/grading.md, "nbgrader's own tools"): the kit's
settings, then this folder's layout, course.toml's limits, the sandboxed autograde and the redacted
feedback. Edit course.toml, not this file: it is read each time nbgrader starts.
"""
import sys
from pathlib import Path

KIT = {kit}  # the labkit checkout
if str(KIT) not in sys.path:
    sys.path.insert(0, str(KIT))
load_subconfig(str(KIT / "autograder" / "nbgrader_config.py"))  # noqa: F821 - the stubs students see

from autograder.nbgrader_course import course_config  # noqa: E402

c.merge(course_config(Path(__file__).resolve().parent))  # noqa: F821 - c is nbgrader's config
'''


def ensure_config(course: Course) -> str | None:
    """Write ``<course>/nbgrader_config.py`` when it is missing or is an older file of the kit's; a file of
    the instructor's own is left alone.  Returns a note for the instructor, or None."""
    path = course.root / FILE_NAME
    wanted = config_text(course.root)
    if path.exists():
        text = path.read_text(encoding="utf-8", errors="replace")
        if text == wanted:
            return None
        if MARK not in text:
            lines = "import sys" + wanted.split("\nimport sys", 1)[1].rstrip()
            return (f"note: {path} is not the kit's, so nbgrader's own tools (formgrader, nbgrader autograde, "
                    "generate_feedback, validate) use it as it is; to give them the kit's settings, put these "
                    f"lines at its top (your own settings below them still win):\n{lines}")
    if course.root == ROOT and path.exists():
        return None  # the repository's own file is in git: never rewritten here
    course.root.mkdir(parents=True, exist_ok=True)
    path.write_text(wanted, encoding="utf-8")
    return None


if __name__ == "__main__":  # python -m autograder.nbgrader_course [DIR]: write DIR's file (default: $LABKIT_COURSE)
    where = Course(sys.argv[1] if len(sys.argv) > 1 else None)
    print(ensure_config(where) or f"{where.root / FILE_NAME}: nbgrader's own tools use the kit's settings there")

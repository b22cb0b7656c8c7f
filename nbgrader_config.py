"""nbgrader's settings for this course folder: nbgrader's command line and its JupyterLab extension
(formgrader, Validate) read this file from the folder they are started in.

Written by labkit (autograder/nbgrader_course.py; docs/grading.md, "nbgrader's own tools"): the kit's
settings, then this folder's layout, course.toml's limits, the sandboxed autograde and the redacted
feedback. Edit course.toml, not this file: it is read each time nbgrader starts.
"""
import sys
from pathlib import Path

KIT = Path(__file__).resolve().parent  # the labkit checkout
if str(KIT) not in sys.path:
    sys.path.insert(0, str(KIT))
load_subconfig(str(KIT / "autograder" / "nbgrader_config.py"))  # noqa: F821 - the stubs students see

from autograder.nbgrader_course import course_config  # noqa: E402

c.merge(course_config(Path(__file__).resolve().parent))  # noqa: F821 - c is nbgrader's config

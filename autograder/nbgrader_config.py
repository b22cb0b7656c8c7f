"""nbgrader configuration of the course: used by `python -m autograder release` and `make release`.

Layout: instructor sources in solutions/<lab>/<lab>.ipynb, student copies
generated into notebooks/<lab>/ (nbgrader's "source" and "release" steps).
The time limit comes from the course settings (course.toml, [limits] cell_timeout).
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # nbgrader loads this file from autograder/, where `autograder` is not importable
    sys.path.insert(0, str(ROOT))

from autograder.settings import load  # noqa: E402

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"

# What a student sees in place of a solution: the cell's own "# TODO: ..." comment
# (kept, it stands above the BEGIN SOLUTION marker) says what to write, then a line
# that fails loudly until it is replaced.
c.ClearSolutions.code_stub = {"python": "raise NotImplementedError()  # replace this line with your code"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Cells train real models: the course's per-cell limit, as when the autograder grades.
c.Execute.timeout = load(ROOT / "course.toml").cell_timeout

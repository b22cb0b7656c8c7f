"""Generate the student notebooks in notebooks/ from the instructor sources in solutions/.

First the course settings are stamped into each source (autograder/stamp.py: the header,
setup, graded-test and hand-in cells), then nbgrader's ``generate_assignment`` writes the
student copy.  Changing course.toml and releasing again is the whole procedure.
"""
import logging
from pathlib import Path

import nbformat

from autograder import CONFIG_DIR, ROOT, labs
from autograder.course import notebooks_in
from autograder.settings import Settings, load
from autograder.stamp import stamp


def generate(lab: str, root: Path, release_dir: Path, source_directory: str = "solutions",
             db_url: str | None = None) -> None:
    """nbgrader's generate_assignment of ``root/source_directory/lab`` into ``release_dir/lab``, in this process
    (nbgrader takes seconds to import: once for all labs), configured by autograder/nbgrader_config.py (the
    stubs students see); with ``db_url``, the lab's cells and hidden tests also go into that gradebook."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    c = PyFileConfigLoader("nbgrader_config.py", path=str(CONFIG_DIR)).load_config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.source_directory = source_directory
    c.CourseDirectory.release_directory = str(release_dir)
    c.CourseDirectory.assignment_id = lab
    c.GenerateAssignment.force = True
    if db_url:
        c.CourseDirectory.db_url = db_url
    else:
        c.GenerateAssignment.no_database = True
        c.SaveCells.enabled = False
    log = logging.getLogger("autograder.generate")
    log.setLevel(logging.ERROR)
    GenerateAssignment(coursedir=CourseDirectory(config=c), config=c, log=log).start()


def source_path(lab: str, solutions: Path | None = None) -> Path:
    return Path(solutions or ROOT / "solutions") / lab / f"{lab}.ipynb"


def stamped(lab: str, settings: Settings, solutions: Path | None = None) -> tuple:
    """(the lab's source as it is on disk, the same stamped with ``settings``), both as notebook text."""
    path = source_path(lab, solutions)
    text = path.read_text(encoding="utf-8")
    return text, nbformat.writes(stamp(nbformat.reads(text, as_version=4), lab, settings)) + "\n"


def unstamped_labs(settings: Settings | None = None, solutions: Path | None = None) -> list:
    """The labs whose source does not carry ``settings`` yet (`make release` stamps them)."""
    settings = settings or load()
    out = []
    for lab in labs():
        on_disk, wanted = stamped(lab, settings, solutions)
        if on_disk != wanted:
            out.append(lab)
    return out


def release(lab_ids=None, release_dir: Path | None = None, settings: Settings | None = None,
            solutions: Path | None = None) -> list:
    """Stamp the settings into each lab's source, then run `nbgrader generate_assignment` (all labs by default).

    ``release_dir`` writes the student copies somewhere else than notebooks/, ``solutions``
    reads (and stamps) the sources in another folder (the tests release a changed copy);
    ``settings`` defaults to the kit's course.toml.  Returns the lab ids.
    """
    settings = settings or load()
    solutions = Path(solutions or ROOT / "solutions").resolve()
    lab_ids = list(lab_ids or labs())
    for lab in lab_ids:
        if source_path(lab, solutions).is_file():
            before, after = stamped(lab, settings, solutions)
            if after != before:
                source_path(lab, solutions).write_text(after, encoding="utf-8")
        elif not notebooks_in(solutions / lab):
            raise SystemExit(f"cannot release {lab!r}: {solutions / lab} holds no notebook (.ipynb)")
        # else an assignment of nbgrader's layout (several notebooks, any names): released as it is, since
        # the kit's header, setup and hand-in cells are written for a lab of one notebook named as the lab
        generate(lab, solutions.parent, Path(release_dir or ROOT / "notebooks").resolve(), solutions.name)
    return lab_ids

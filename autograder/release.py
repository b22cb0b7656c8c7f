"""Generate the student notebooks in notebooks/ from the instructor sources in solutions/."""
from pathlib import Path

from autograder import labs, nbgrader


def release(lab_ids=None, release_dir: Path | None = None) -> list:
    """Run `nbgrader generate_assignment` for each lab (all by default); return the lab ids.

    ``release_dir`` writes the student copies somewhere else than notebooks/
    (the tests regenerate into a temporary folder and compare).
    """
    lab_ids = list(lab_ids or labs())
    for lab in lab_ids:
        extra = [f"--CourseDirectory.release_directory={Path(release_dir).resolve()}"] if release_dir else []
        nbgrader("generate_assignment", lab, "--force", "--no-db", *extra)
    return lab_ids

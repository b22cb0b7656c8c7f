"""The course folder: where collected submissions, grades, feedback and the gradebook live.

Default: the repository root (override with ``--course DIR`` or ``LABKIT_COURSE``).
Everything below is generated and git-ignored::

    collected/<lab>/<student>/<time>-<sha>.<ext>  every file ever collected, never overwritten
    collected/<lab>/collect-log.csv               what collect did with each file, and why
    submitted/<student>/<lab>/<notebook>.ipynb    the submission being graded (the latest of each notebook)
    submitted/<student>/<lab>/submission.json     its original names, times, sizes, SHA-256
    autograded/<student>/<lab>/<notebook>.ipynb   the executed notebooks (nbgrader's layout)
    feedback/<student>/<lab>/<notebook>.html      what the student gets back
    grades/<lab>.csv, grades/all_labs.csv         one row per student / everything for the LMS
    gradebook.db                                  nbgrader's gradebook (or --db URL, below)
    .autograder/                                  the grader's private state (records, templates, logs)

A lab is nbgrader's assignment: a folder ``<course>/solutions/<lab>/`` with one or more
notebooks (the kit's labs have one, ``<lab>.ipynb``), when the course folder has a
``solutions/`` folder, else the kit's own ``solutions/``; the settings are
``<course>/course.toml`` when it has one, else the kit's.

The gradebook is nbgrader's (``nbgrader.api.Gradebook``, SQLAlchemy): ``--db URL``, else
``LABKIT_GRADEBOOK``, else course.toml's ``[database] url``, else ``sqlite:///<course>/gradebook.db``
(``gradebook_url``).  ``postgresql://`` (and ``postgres://``) means ``postgresql+psycopg://``: psycopg 3,
the ``grader`` extra's driver, whatever SQLAlchemy's default driver is; docs/grading.md, "The gradebook
on PostgreSQL".
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from autograder import ROOT
from autograder.settings import Settings, settings_path
from autograder.settings import load as load_settings


def notebooks_in(folder: Path) -> list:
    """The names (without .ipynb) of the notebooks directly inside ``folder``, sorted; hidden ones left out."""
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.ipynb") if p.is_file() and not p.name.startswith("."))


# Drivers the kit knows how to install, by SQLAlchemy's dialect+driver name: what to tell the instructor.
DRIVERS = {"postgresql+psycopg": "psycopg 3, the grader extra's driver: pip install -c constraints.txt "
                                 "-e '.[grader]' (or `make setup`), or pip install 'psycopg[binary]'",
           "postgresql+psycopg2": "psycopg2: pip install psycopg2-binary, or use postgresql:// (psycopg 3, "
                                  "which the grader extra installs)"}


def gradebook_url(url: str) -> str:
    """The SQLAlchemy URL of a gradebook, with ``postgresql://`` and ``postgres://`` made
    ``postgresql+psycopg://`` (psycopg 3); SystemExit saying what to fix when it is not a URL or its
    driver is not installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SystemExit(f"the gradebook {url!r} is not an SQLAlchemy URL: expected e.g. "
                         "sqlite:////path/to/gradebook.db or postgresql://USER@HOST/DATABASE (docs/grading.md, "
                         "'The gradebook on PostgreSQL')") from None
    if parsed.drivername in ("postgresql", "postgres"):  # SQLAlchemy 2.0's default driver is psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg")
        url = parsed.render_as_string(hide_password=False)
    shown = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise SystemExit(f"the gradebook {shown}: SQLAlchemy knows no database {parsed.drivername!r}; use "
                         "sqlite:///PATH or postgresql://USER@HOST/DATABASE") from None
    except ImportError as exc:
        name = f"{parsed.get_backend_name()}+{parsed.get_driver_name()}"
        install = DRIVERS.get(name, f"the Python package of the {parsed.get_driver_name()!r} driver")
        raise SystemExit(f"the gradebook {shown} needs the database driver {name!r}, which is not installed "
                         f"({exc}): install {install}") from None
    return url


def shown_url(url: str) -> str:
    """The gradebook's URL with its password as ***, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class Course:
    def __init__(self, root: str | os.PathLike | None = None, db_url: str | None = None):
        self.root = Path(root or os.environ.get("LABKIT_COURSE") or ROOT).resolve()
        self._db_url = db_url
        own = self.root / "solutions"
        self.solutions = own if own.is_dir() else ROOT / "solutions"
        self.state = self.root / ".autograder"

    @property
    def default_db_url(self) -> str:
        """nbgrader's own default gradebook for this folder."""
        return f"sqlite:///{self.root / 'gradebook.db'}"

    @functools.cached_property
    def db_url(self) -> str:
        """The gradebook (an SQLAlchemy URL, password included when one was given): ``--db``, else
        ``$LABKIT_GRADEBOOK``, else course.toml's ``[database] url``, else ``<course>/gradebook.db``;
        checked (``gradebook_url``) when first used, so that commands without a gradebook never need it."""
        url = self._db_url or os.environ.get("LABKIT_GRADEBOOK") or self.settings.database_url or \
            self.default_db_url
        return gradebook_url(url)

    @property
    def db_shown(self) -> str:
        """The gradebook's URL as messages show it (its password as ***)."""
        return shown_url(self.db_url)

    @property
    def db_identity(self) -> str:
        """The gradebook's URL without any password: the same database whatever password reached it."""
        from sqlalchemy.engine import URL, make_url

        url = make_url(self.db_url)
        return URL.create(url.drivername, url.username, None, url.host, url.port, url.database,
                          url.query).render_as_string(hide_password=False)

    @functools.cached_property
    def settings(self) -> Settings:
        """The course folder's course.toml, or the kit's when it has none."""
        return load_settings(settings_path(self.root))

    def labs(self) -> list:
        """The labs (nbgrader's assignments): every folder of the sources that holds a notebook."""
        if not self.solutions.is_dir():
            return []
        return sorted(p.name for p in self.solutions.iterdir() if p.is_dir() and notebooks_in(p))

    def notebooks(self, lab: str) -> list:
        """The notebook names of ``lab`` (without .ipynb), sorted: nbgrader's notebooks of the assignment.
        The kit's labs have one, named as the lab; an assignment of nbgrader's layout may have several."""
        return notebooks_in(self.solutions / lab)

    def check_lab(self, lab: str) -> None:
        """SystemExit naming the labs there are, or why the folder named is not one."""
        if lab in self.labs():
            return
        folder = self.solutions / lab
        if folder.is_dir():
            raise SystemExit(f"{lab!r} is not a lab: {folder} holds no notebook (.ipynb) directly inside; put "
                             f"the assignment's notebooks there (nbgrader's layout: {self.solutions}/{lab}/<any "
                             "name>.ipynb)")
        raise SystemExit(f"unknown lab {lab!r}: expected one of {', '.join(self.labs()) or '(none)'} "
                         f"(the folders of {self.solutions} that hold notebooks)")

    def source_dir(self, lab: str) -> Path:
        return self.solutions / lab

    def submitted(self, student: str, lab: str) -> Path:
        return self.root / "submitted" / student / lab

    def autograded(self, student: str, lab: str) -> Path:
        return self.root / "autograded" / student / lab

    def feedback(self, student: str, lab: str) -> Path:
        return self.root / "feedback" / student / lab

    def collected(self, lab: str) -> Path:
        return self.root / "collected" / lab

    def grades_csv(self, lab: str) -> Path:
        return self.root / "grades" / f"{lab}.csv"

    def records(self, lab: str) -> Path:
        return self.state / "records" / lab

    def students(self, lab: str) -> list:
        """Students with a collected submission of ``lab``."""
        base = self.root / "submitted"
        return sorted(p.parent.parent.name for p in base.glob(f"*/{lab}/submission.json")) if base.is_dir() else []

    def submission(self, student: str, lab: str) -> dict:
        return json.loads((self.submitted(student, lab) / "submission.json").read_text())

    def record(self, student: str, lab: str) -> dict | None:
        path = self.records(lab) / f"{student}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def save_record(self, student: str, lab: str, record: dict) -> None:
        path = self.records(lab) / f"{student}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, path)

"""The course settings: ``course.toml`` at the root of the course folder (or of the kit).

Everything an instructor sets once per course and that used to be copied into several
files comes from here: the course's name and term, where the student edition is
published and what Colab installs from it, the student-id rule and the file name that
students hand in (the notebooks' submit cells and ``collect`` use the same rule), the LMS,
and the grader's limits.  ``make release`` stamps it into the notebooks, ``make
student-edition`` into the student edition.  docs/student-edition.md explains each key.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from autograder import ROOT

FILE_NAME = "course.toml"
DISTRIBUTION = "labkit-course"  # the student edition's name on PyPI ("labkit" is another project there)
LMS = ("canvas", "moodle", "none")
BRANCHES = ("main", "master", "HEAD", "develop", "dev", "trunk")  # refs that move: not a pin
MOODLE_IDENTITIES = ("email", "idnumber", "username")  # the user fields Moodle's grade import maps a row by
# Tables whose keys are lab ids: table -> what each value is.  (Checked here as strings; `export` checks the labs.)
LAB_TABLES = {"gradebook": "the lab's column title in the LMS gradebook (docs/lms.md)"}

# Every key: (table, key) -> (type, default or REQUIRED, what it is).  The error messages list these.
REQUIRED = object()
KEYS = {
    ("course", "name"): (str, REQUIRED, "the course's name, shown in every notebook and the student README"),
    ("course", "term"): (str, REQUIRED, "the term, e.g. 'Spring 2027'"),
    ("student_edition", "repository"): (str, REQUIRED, "the public GitHub repository of the student edition"),
    ("student_edition", "ref"): (str, REQUIRED, "the tag or commit of this term's edition"),
    ("student_edition", "pip"): (str, None, "what the Colab setup cell installs (default: from repository and ref)"),
    ("submission", "student_id"): (str, REQUIRED, "a regular expression matching a whole student id"),
    ("submission", "example_id"): (str, REQUIRED, "an id that matches student_id, shown to students"),
    ("submission", "file"): (str, "{student_id}_{lab}.ipynb", "the file name students hand in"),
    ("submission", "lms"): (str, "none", f"where students hand in: {', '.join(LMS)}"),
    ("submission", "moodle_identity"): (str, "email", f"the column of Moodle's grading worksheet that names a student "
                                                      f"for the kit and for Moodle's grade import: "
                                                      f"{', '.join(MOODLE_IDENTITIES)}"),
    ("limits", "cell_timeout"): (int, 300, "seconds of wall clock per cell"),
    ("limits", "notebook_timeout"): (int, 1200, "seconds of wall clock per notebook"),
    ("limits", "memory_mb"): (int, 3072, "address space per process, MB"),
    ("limits", "max_procs"): (int, 128, "processes + threads per submission"),
    ("limits", "threads"): (int, 1, "OpenMP/MKL threads per kernel"),
    ("limits", "max_size_mb"): ((int, float), 50, "larger submissions are recorded, not graded (MB)"),
    ("database", "url"): (str, None, "the gradebook's SQLAlchemy URL without a password, e.g. "
                                     "postgresql://grader@db.example.edu/dl2027 (default: <course>/gradebook.db; "
                                     "--db and LABKIT_GRADEBOOK win)"),
    ("grading", "cluster"): (str, None, "the Dask scheduler that `grade` sends submissions to, e.g. "
                                        "tcp://grader-head.example.edu:8786 (default: grade on this machine; "
                                        "--cluster wins; docs/grading.md, 'Grading on a cluster')"),
}


class SettingsError(SystemExit):
    """A problem in course.toml, said so that the instructor can fix it (a SystemExit: the CLI prints it)."""


@dataclass(frozen=True)
class Settings:
    path: Path
    name: str
    term: str
    repository: str
    ref: str
    pip: str
    student_id: str
    example_id: str
    file: str
    lms: str
    moodle_identity: str
    cell_timeout: int
    notebook_timeout: int
    memory_mb: int
    max_procs: int
    threads: int
    max_size_mb: float
    gradebook: tuple = ()  # ((lab, column title in the LMS gradebook), ...) from [gradebook]
    database_url: str | None = None  # [database] url: nbgrader's gradebook (Course.db_url)
    cluster: str | None = None  # [grading] cluster: a Dask scheduler's address (autograder/cluster.py)

    def gradebook_title(self, lab: str) -> str:
        """The lab's column title in the LMS gradebook: [gradebook] <lab>, else the lab id."""
        return dict(self.gradebook).get(lab, lab)

    # ------------------------------------------------------------------ what the notebooks show

    @property
    def github(self) -> tuple | None:
        """(owner, repo) when the student edition is on GitHub, else None."""
        parts = urlsplit(self.repository)
        path = parts.path.strip("/").removesuffix(".git").split("/")
        return (path[0], path[1]) if parts.netloc.lower() == "github.com" and len(path) == 2 else None

    def notebook_path(self, lab: str) -> str:
        return f"notebooks/{lab}/{lab}.ipynb"

    def source_url(self, lab: str | None = None) -> str:
        """The lab's notebook in the student edition (the repository's page without a lab)."""
        base = self.repository.removesuffix(".git").rstrip("/")
        if lab is None:
            return base
        return f"{base}/blob/{self.ref}/{self.notebook_path(lab)}" if self.github else base

    def colab_url(self, lab: str) -> str | None:
        """Colab's address of the lab (Colab opens notebooks from GitHub only)."""
        if not self.github:
            return None
        owner, repo = self.github
        return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{self.ref}/{self.notebook_path(lab)}"

    def submission_name(self, lab: str, student_id: str = "<your student id>") -> str:
        return self.file.format(student_id=student_id, lab=lab)

    def student_id_in(self, file_name: str) -> str | None:
        """The student id that a handed-in file name starts with, by the ``file`` rule: the shortest
        prefix followed by the rule's separator that is a whole student id (None if there is none)."""
        separator = self.file.split("{student_id}", 1)[1].split("{lab}", 1)[0]
        at = file_name.find(separator, 1)
        while at > 0:
            if self.is_student_id(file_name[:at]):
                return file_name[:at]
            at = file_name.find(separator, at + 1)
        return None

    def is_student_id(self, text: str) -> bool:
        return re.fullmatch(self.student_id, text) is not None


def settings_path(course_root: str | Path | None = None) -> Path:
    """The course folder's course.toml when it has one, else the kit's."""
    own = Path(course_root) / FILE_NAME if course_root else None
    return own if own is not None and own.is_file() else ROOT / FILE_NAME


def load(path: str | Path | None = None) -> Settings:
    """Read and check course.toml (default: the kit's); SettingsError says what to fix."""
    path = Path(path) if path else ROOT / FILE_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path} is missing: copy course.toml from the kit and edit it") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None

    def fail(what: str):
        raise SettingsError(f"{path}: {what}")

    tables = {table for table, _ in KEYS} | set(LAB_TABLES)
    for table, body in data.items():
        if table not in tables or not isinstance(body, dict):
            fail(f"unknown table [{table}]: expected {', '.join(f'[{t}]' for t in sorted(tables))}")
        if table in LAB_TABLES:
            for lab, value in body.items():
                if not isinstance(value, str) or not value.strip():
                    fail(f"[{table}] {lab} must be a non-empty string, got {value!r} ({LAB_TABLES[table]})")
            continue
        for key in body:
            if (table, key) not in KEYS:
                known = ", ".join(k for t, k in KEYS if t == table)
                fail(f"unknown key {key!r} in [{table}]: expected one of {known}")
    values = {}
    for (table, key), (kind, default, meaning) in KEYS.items():
        value = data.get(table, {}).get(key, default)
        if value is REQUIRED:
            fail(f"[{table}] {key} is missing: {meaning}")
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            fail(f"[{table}] {key} must be {getattr(kind, '__name__', 'a number')}, got {value!r} ({meaning})")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            fail(f"[{table}] {key} must be positive, got {value!r}")
        values[key] = value

    repository = values["repository"].strip()
    if urlsplit(repository).scheme not in ("https", "http", "file") or not urlsplit(repository).path.strip("/"):
        fail(f"[student_edition] repository must be the URL of a git repository, got {repository!r}")
    values["repository"] = repository
    if not values["ref"].strip() or values["ref"] in BRANCHES:
        fail(f"[student_edition] ref {values['ref']!r} is a branch, which moves: students of one course could get "
             "different kits. Tag the edition (git tag 2027.1) and set ref to the tag, or to a commit")
    if values["pip"] is None:
        values["pip"] = f"{DISTRIBUTION} @ git+{repository.removesuffix('/')}@{values['ref']}"
    check_pip(values["pip"], fail)
    try:
        re.compile(values["student_id"])
    except re.error as exc:
        fail(f"[submission] student_id is not a regular expression: {exc}")
    if re.fullmatch(values["student_id"], values["example_id"]) is None:
        fail(f"[submission] example_id {values['example_id']!r} does not match student_id {values['student_id']!r}")
    file = values["file"]
    if not file.startswith("{student_id}") or "{lab}" not in file or not file.endswith(".ipynb") or \
            file.split("{student_id}", 1)[1].split("{lab}", 1)[0] == "":
        fail(f"[submission] file must start with {{student_id}}, then a separator, then contain {{lab}} and end "
             f"in .ipynb (e.g. '{{student_id}}_{{lab}}.ipynb'), got {file!r}")
    if values["lms"] not in LMS:
        fail(f"[submission] lms must be one of {', '.join(LMS)}, got {values['lms']!r}")
    if values["moodle_identity"] not in MOODLE_IDENTITIES:
        fail(f"[submission] moodle_identity must be one of {', '.join(MOODLE_IDENTITIES)}, "
             f"got {values['moodle_identity']!r}")
    database_url = values.pop("url")
    if database_url is not None:
        check_database_url(database_url, fail)
    cluster = values.pop("cluster")
    if cluster is not None and not re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", cluster.strip()):
        fail(f"[grading] cluster must be a Dask scheduler address such as tcp://grader-head.example.edu:8786, "
             f"got {cluster!r}")
    gradebook = tuple((lab, title.strip()) for lab, title in data.get("gradebook", {}).items())
    return Settings(path=path, gradebook=gradebook, database_url=database_url,
                    cluster=cluster.strip() if cluster else None, **values)


def check_database_url(url: str, fail) -> None:
    """[database] url: a database URL with no password in it (course.toml is shared and often in git)."""
    parts = urlsplit(url.strip())
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme or "") or "://" not in url:
        fail(f"[database] url must be an SQLAlchemy URL such as postgresql://grader@db.example.edu/dl2027 or "
             f"sqlite:////srv/course/gradebook.db, got {url!r}")
    if parts.password is not None or re.search(r"(^|[?&])password=", parts.query):
        fail("[database] url holds a password: never put one in course.toml. Leave it out of the URL "
             "(postgresql://grader@db.example.edu/dl2027) and give it in ~/.pgpass or $PGPASSWORD, or put the whole "
             "URL in $LABKIT_GRADEBOOK instead (docs/grading.md, 'The gradebook on PostgreSQL')")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_pip(spec: str, fail) -> None:
    """A pip requirement that installs one exact student edition: name==version, a git URL at a tag or
    commit, or a wheel/sdist file.  ``fail(message)`` is called otherwise."""
    spec = spec.strip()
    named = re.fullmatch(r"(?P<name>[A-Za-z0-9][\w.-]*)\s*(?:(?P<eq>==)\s*(?P<version>\S+)|@\s*(?P<url>\S+))", spec)
    if named and canonical(named["name"]) != DISTRIBUTION:
        fail(f"[student_edition] pip installs {named['name']!r}, but the student edition is called "
             f"{DISTRIBUTION!r} (the PyPI project 'labkit' is somebody else's)")
    if named and named["eq"]:
        return
    url = named["url"] if named else spec
    if url.startswith("git+"):
        path = urlsplit(url[4:]).path
        ref = path.rsplit("@", 1)[1] if "@" in path else ""
        if not ref:
            fail(f"[student_edition] pip {spec!r} is not pinned: add @<tag or commit> to the git URL")
        if ref in BRANCHES:
            fail(f"[student_edition] pip {spec!r} is pinned to the branch {ref!r}, which moves: use a tag or commit")
        return
    wheel = url.rsplit("/", 1)[-1]
    if re.search(r"\.(whl|tar\.gz|zip)$", wheel):
        if not named and not canonical(wheel).startswith(DISTRIBUTION + "-"):
            fail(f"[student_edition] pip {spec!r} is not a {DISTRIBUTION} file")
        return
    fail(f"[student_edition] pip {spec!r} does not pin one edition: use '{DISTRIBUTION}==<version>', "
         f"'{DISTRIBUTION} @ git+<repository>@<tag>' or the URL of a wheel")

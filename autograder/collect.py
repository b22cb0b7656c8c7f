"""`python -m autograder collect LAB SOURCE`: bring an LMS download into the course folder.

SOURCE is a zip file, a folder, or one file.  Each file is mapped to a student:

- in a folder layout (``SOURCE/<student>/<anything>.ipynb``) the top folder is the student id;
- otherwise the file name starts with the student id, by the course settings' rule
  (course.toml, ``[submission] file`` and ``student_id``; by default the id and an underscore:
  ``s1234567_03_mlp.ipynb``, ``alice_lab3 (1).ipynb``), as the labs' hand-in cell tells students;
- ``--pattern REGEX`` replaces both: a regular expression with a ``(?P<student>...)`` group,
  matched against the path inside SOURCE (e.g. ``'^(?P<student>\\d{7})-'``);
- ``--roster FILE`` (one student id per line, or a CSV whose first column is the id)
  refuses any id not on it.

Refused, and reported: files that are not ``.ipynb``, names with no student id,
names that mention another lab of the course, ids not on the roster.  Ignored:
``__MACOSX/``, ``.ipynb_checkpoints/`` and hidden files.

The submission time is the file's modification time (for a zip, the entry's
time, read as local time).  Every file is archived under
``collected/<lab>/<student>/`` and never overwritten; the latest submission of
each student becomes ``submitted/<student>/<lab>/<lab>.ipynb`` (nbgrader's
layout).  A newer file replaces an older current one (both stay archived, and
the report says so); an older one is archived only; an identical one is skipped.
Files larger than ``--max-size`` MB are recorded (name, size, SHA-256) but not
copied, and are graded 0 as too large.  Every action is appended to
``collected/<lab>/collect-log.csv``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from autograder.course import Course
from autograder.settings import Settings

JUNK = ("__MACOSX", ".ipynb_checkpoints")


class Entry:
    def __init__(self, name: str, time: datetime, size: int, read):
        self.name, self.time, self.size, self._read = name, time, size, read

    def read(self, limit: int) -> bytes:
        return self._read(limit)


def entries(source: Path) -> list:
    """Every file in SOURCE as an Entry (name = path inside SOURCE, with /)."""
    if source.is_file() and zipfile.is_zipfile(source):
        archive = zipfile.ZipFile(source)
        out = []
        for info in archive.infolist():
            if info.is_dir():
                continue
            time = datetime(*info.date_time).astimezone(UTC)  # zip times are local times

            def read(limit, info=info):
                with archive.open(info) as f:
                    return f.read(limit + 1)  # never more than the limit: zip headers can lie
            out.append(Entry(info.filename, time, info.file_size, read))
        return out
    if source.is_file():
        files, base = [source], source.parent
    elif source.is_dir():
        files, base = sorted(p for p in source.rglob("*") if p.is_file()), source
    else:
        raise SystemExit(f"collect: {source} is neither a zip file, a folder nor a file")
    out = []
    for path in files:
        stat = path.stat()

        def read(limit, path=path):
            with open(path, "rb") as f:
                return f.read(limit + 1)
        out.append(Entry(path.relative_to(base).as_posix(), datetime.fromtimestamp(stat.st_mtime, UTC),
                         stat.st_size, read))
    return out


def lab_mentions(name: str, labs: list) -> set:
    """Which of the course's labs a file name mentions (by id, by name, or as lab<N>)."""
    lower = name.lower()
    found = set()
    for lab in labs:
        number, _, title = lab.partition("_")
        if lab.lower() in lower or (title and re.search(rf"(^|[^a-z]){re.escape(title.lower())}([^a-z]|$)", lower)):
            found.add(lab)
        if number.isdigit() and re.search(rf"lab[ _\-]?0*{int(number)}(?!\d)", lower):
            found.add(lab)
    return found


def read_roster(path: Path) -> set:
    ids = set()
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if row and row[0].strip() and row[0].strip().lower() not in ("id", "student", "student_id"):
                ids.add(row[0].strip())
    return ids


def map_entry(entry: Entry, lab: str, labs: list, pattern: re.Pattern | None, roster: set | None,
              settings: Settings):
    """(student, None) or (None, why the file is refused) or (None, None) for files ignored silently."""
    path = PurePosixPath(entry.name)
    if any(part in JUNK or part.startswith(".") for part in path.parts):
        return None, None
    if path.suffix.lower() != ".ipynb":
        return None, f"not a notebook file ({path.suffix or 'no extension'})"
    if pattern is not None:
        match = pattern.search(entry.name)
        student = match.group("student") if match else None
    elif len(path.parts) > 1:
        student = path.parts[0]
    else:
        student = settings.student_id_in(path.name)
    if not student or not settings.is_student_id(student) or lab_mentions(student, labs) or student.isdigit() and \
            len(student) <= 2:
        return None, (f"no student id in the file name (expected {settings.submission_name(lab)}, "
                      f"e.g. {settings.submission_name(lab, settings.example_id)}; got {path.name!r})")
    if roster is not None and student not in roster:
        return None, f"student id {student!r} is not on the roster"
    others = lab_mentions(path.name, labs) - {lab}
    if others and lab not in lab_mentions(path.name, labs):
        return None, f"the name says {', '.join(sorted(others))}, not {lab}"
    return student, None


def collect(lab: str, source: str | os.PathLike, course: Course | None = None, pattern: str | None = None,
            roster: str | os.PathLike | None = None, max_bytes: int | None = None, say=print) -> list:
    """Collect SOURCE for LAB; return the report rows (file, student, action, detail).  ``max_bytes``
    defaults to the course settings' max_size_mb."""
    course = course or Course()
    max_bytes = max_bytes or int(course.settings.max_size_mb * 2**20)
    course.check_lab(lab)
    regex = re.compile(pattern) if pattern else None
    if regex is not None and "student" not in regex.groupindex:
        raise SystemExit("collect: --pattern needs a (?P<student>...) group")
    ids = read_roster(Path(roster)) if roster else None
    labs = course.labs()
    report, mapped = [], []
    for entry in entries(Path(source)):
        student, problem = map_entry(entry, lab, labs, regex, ids, course.settings)
        if student:
            mapped.append((student, entry))
        elif problem:
            report.append({"file": entry.name, "student": "", "action": "refused", "detail": problem})
    for student, entry in sorted(mapped, key=lambda m: (m[0], m[1].time, m[1].name)):
        report.append(_store(course, lab, student, entry, max_bytes))
    _log(course, lab, report)
    for row in report:
        say(f"{row['action']:>9}  {row['student'] or '-':<16} {row['file']}" + (f"  ({row['detail']})" if
                                                                                row['detail'] else ""))
    refused = [r for r in report if r["action"] == "refused"]
    say(f"{lab}: {sum(r['action'] in ('collected', 'replaced') for r in report)} submission(s) now current, "
        f"{len(refused)} file(s) refused" + (" (see above; rename them or use --pattern)" if refused else ""))
    return report


def _store(course: Course, lab: str, student: str, entry: Entry, max_bytes: int) -> dict:
    data = entry.read(max_bytes)
    too_large = len(data) > max_bytes or entry.size > max_bytes
    digest = hashlib.sha256(data).hexdigest() if not too_large else hashlib.sha256(
        f"{entry.name}|{entry.size}|{entry.time.isoformat()}".encode()).hexdigest()
    stamp = entry.time.strftime("%Y%m%dT%H%M%SZ")
    archive = course.collected(lab) / student
    archive.mkdir(parents=True, exist_ok=True)
    row = {"file": entry.name, "student": student}
    if any(p.name.split("-", 1)[-1].startswith(digest[:12]) for p in archive.iterdir()):
        return {**row, "action": "skipped", "detail": "identical to a file already collected"}
    kept = archive / (f"{stamp}-{digest[:12]}.ipynb" if not too_large else f"{stamp}-{digest[:12]}.too-large.json")
    meta = {"file": entry.name, "size": max(entry.size, len(data)), "sha256": digest, "too_large": too_large,
            "max_bytes": max_bytes,
            "timestamp": entry.time.isoformat(sep=" ", timespec="seconds"),
            "collected_as": str(kept.relative_to(course.root))}
    if too_large:
        kept.write_text(json.dumps(meta, indent=1))
    else:
        kept.write_bytes(data)
    current_dir = course.submitted(student, lab)
    current = json.loads((current_dir / "submission.json").read_text()) if \
        (current_dir / "submission.json").exists() else None
    if current and current["timestamp"] > meta["timestamp"]:
        return {**row, "action": "archived", "detail": f"older than the current submission of {current['timestamp']}"
                                                       f" ({current['file']}): kept in {kept.parent.name}/ only"}
    current_dir.mkdir(parents=True, exist_ok=True)
    notebook = current_dir / f"{lab}.ipynb"
    if notebook.exists():
        notebook.unlink()
    if not too_large:
        notebook.write_bytes(data)
    (current_dir / "timestamp.txt").write_text(meta["timestamp"])
    (current_dir / "submission.json").write_text(json.dumps(meta, indent=1))
    detail = "too large: recorded, not copied" if too_large else ""
    if current:
        detail = (f"replaces the submission of {current['timestamp']} ({current['file']}); both are kept in "
                  f"collected/{lab}/{student}/" + (f"; {detail}" if detail else ""))
        return {**row, "action": "replaced", "detail": detail}
    return {**row, "action": "collected", "detail": detail}


def _log(course: Course, lab: str, report: list) -> None:
    path = course.collected(lab) / "collect-log.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["collected_at", "file", "student", "action", "detail"])
        if new:
            writer.writeheader()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for row in report:
            writer.writerow({"collected_at": now, **row})

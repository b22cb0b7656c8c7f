"""`python -m autograder collect LAB SOURCE`: bring an LMS download into the course folder.

SOURCE is a zip file, a folder, or one file.  Each file is mapped to a student:

- in a folder layout (``SOURCE/<student>/<anything>.ipynb``) the top folder is the student id;
- otherwise the file name starts with the student id, by the course settings' rule
  (course.toml, ``[submission] file`` and ``student_id``; by default the id and an underscore:
  ``s1234567_03_mlp.ipynb``, ``alice_lab3 (1).ipynb``), as the labs' hand-in cell tells students;
- ``--pattern REGEX`` replaces both: a regular expression with a ``(?P<student>...)`` group,
  matched against the path inside SOURCE (e.g. ``'^(?P<student>\\d{7})-'``);
- ``--roster FILE`` (one student id per line, or a CSV whose first column is the id)
  refuses any id not on it;
- ``lms="canvas"|"moodle"`` (``--lms``) replaces all of these: SOURCE is that LMS's download, mapped
  through its roster export by autograder/lms.py (docs/lms.md).

A lab of several notebooks (nbgrader's layout: ``solutions/ps1/problem1.ipynb``, ...) also
maps each file to one of them by its name (``notebook_of``); a student's zip
(``alice_ps1.zip``) is opened, one level deep.  The latest file of each notebook is current.

Refused, and reported: files that are not ``.ipynb``, names with no student id,
names that mention another lab of the course, ids not on the roster.  Ignored:
``__MACOSX/``, ``.ipynb_checkpoints/`` and hidden files.

The submission time is the file's modification time (for a zip, the entry's
time, read as local time).  Every file is archived under
``collected/<lab>/<student>/`` and never overwritten; the latest submission of
each student becomes ``submitted/<student>/<lab>/<notebook>.ipynb`` (nbgrader's
layout).  A newer file replaces an older current one (both stay archived, and
the report says so); an older one is archived only; an identical one is skipped.
Files larger than ``--max-size`` MB are recorded (name, size, SHA-256) but not
copied, and are graded 0 as too large.  Every action is appended to
``collected/<lab>/collect-log.csv``.
"""
from __future__ import annotations

import csv
import hashlib
import io
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
        self.meta, self.rank = {}, 0  # what an LMS preset (autograder/lms.py) read from the name; order at equal time

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
            if not info.flag_bits & 0x800:  # UTF-8 names without the zip's UTF-8 flag (Canvas's rubyzip, Windows)
                try:
                    info.filename = info.filename.encode("cp437").decode("utf-8")
                except UnicodeError:
                    pass

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


def expand_zips(found: list, limit: int) -> list:
    """Entries with every zip among them opened: a student who hands in a zip of the lab's notebooks
    (``alice_ps1.zip`` holding ``problem1.ipynb``) gives entries ``alice_ps1.zip/problem1.ipynb``.
    One level deep; a zip over ``limit`` bytes, or one that is not a zip, stays as it is (and is refused
    as not a notebook, with its name)."""
    out = []
    for entry in found:
        if not entry.name.lower().endswith(".zip") or entry.size > limit:
            out.append(entry)
            continue
        data = entry.read(limit)
        if len(data) > limit or not zipfile.is_zipfile(io.BytesIO(data)):
            out.append(entry)
            continue
        inner = zipfile.ZipFile(io.BytesIO(data))
        for info in inner.infolist():
            if info.is_dir():
                continue

            def read(cap, info=info, inner=inner):
                with inner.open(info) as f:
                    return f.read(cap + 1)
            out.append(Entry(f"{entry.name}/{info.filename}", datetime(*info.date_time).astimezone(UTC),
                             info.file_size, read))
    return out


def notebook_of(name: str, notebooks: list) -> str | None:
    """Which of the lab's notebooks a file is: the only one, or the one its name says (``problem1.ipynb``,
    ``alice_problem1.ipynb``, ``problem1 (1).ipynb``: a notebook name as a whole word; the longest wins)."""
    if len(notebooks) == 1:
        return notebooks[0]
    stem = PurePosixPath(name).stem
    if stem in notebooks:
        return stem
    said = [n for n in notebooks if re.search(rf"(^|[^a-z0-9]){re.escape(n.lower())}([^a-z0-9]|$)", stem.lower())]
    longest = max((len(n) for n in said), default=0)
    said = [n for n in said if len(n) == longest]
    return said[0] if len(said) == 1 else None


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
    elif len(path.parts) > 1 and path.parts[0].lower().endswith(".zip"):
        student = settings.student_id_in(path.parts[0])  # alice_ps1.zip/problem1.ipynb
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
            roster: str | os.PathLike | None = None, max_bytes: int | None = None, say=print,
            lms: str = "none") -> list:
    """Collect SOURCE for LAB; return the report rows (file, student, action, detail).  ``max_bytes``
    defaults to the course settings' max_size_mb.  ``lms`` canvas or moodle: SOURCE is that LMS's download
    and ``roster`` its roster export, mapped by autograder/lms.py (the CLI's default is course.toml's lms)."""
    course = course or Course()
    max_bytes = max_bytes or int(course.settings.max_size_mb * 2**20)
    course.check_lab(lab)
    regex = re.compile(pattern) if pattern else None
    if regex is not None and "student" not in regex.groupindex:
        raise SystemExit("collect: --pattern needs a (?P<student>...) group")
    preset = None
    if lms != "none":
        from autograder.lms import Preset

        if regex is not None:
            raise SystemExit(f"collect: --pattern is for --lms none; a {lms} download is mapped by {lms}'s own names")
        preset = Preset(course, lms, lab, roster)
    ids = read_roster(Path(roster)) if roster and preset is None else None
    labs, notebooks = course.labs(), course.notebooks(lab)
    report, mapped = [], []
    for entry in expand_zips(entries(Path(source)), 4 * max_bytes):
        student, problem = preset.map(entry, lab, labs, lab_mentions) if preset else \
            map_entry(entry, lab, labs, regex, ids, course.settings)
        notebook = notebook_of(entry.name, notebooks) if student else None
        if student and notebook is None:
            problem = (f"not one of the notebooks of {lab} ({', '.join(n + '.ipynb' for n in notebooks)}): name "
                       "the file after one of them")
        if student and notebook:
            mapped.append((student, notebook, entry))
        elif problem:
            report.append({"file": entry.name, "student": "", "action": "refused", "detail": problem})
    mapped = preset.arrange(mapped) if preset else mapped
    for student, notebook, entry in sorted(mapped, key=lambda m: (m[0], m[2].time, m[2].rank, m[2].name)):
        row = _store(course, lab, student, notebook, entry, max_bytes, several=len(notebooks) > 1)
        report.append(preset.annotate(row, entry) if preset else row)
    _log(course, lab, report)
    for row in report:
        say(f"{row['action']:>9}  {row['student'] or '-':<16} {row['file']}" + (f"  ({row['detail']})" if
                                                                                row['detail'] else ""))
    refused = [r for r in report if r["action"] == "refused"]
    late = sum(r["action"] in ("collected", "replaced") and "LATE (" in r["detail"] for r in report)
    say(f"{lab}: {sum(r['action'] in ('collected', 'replaced') for r in report)} submission(s) now current"
        f"{f' ({late} marked late by the LMS)' if late else ''}, {len(refused)} file(s) refused"
        + (" (see above; rename them or use --pattern)" if refused and not preset else " (see above)" if refused
           else ""))
    return report


def _store(course: Course, lab: str, student: str, notebook: str, entry: Entry, max_bytes: int,
           several: bool = False) -> dict:
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
    name = f"{stamp}-{digest[:12]}" + (f"-{notebook}" if several else "")
    kept = archive / (f"{name}.ipynb" if not too_large else f"{name}.too-large.json")
    meta = {"file": entry.name, "size": max(entry.size, len(data)), "sha256": digest, "too_large": too_large,
            "max_bytes": max_bytes,
            "timestamp": entry.time.isoformat(sep=" ", timespec="seconds"),
            "collected_as": str(kept.relative_to(course.root))}
    if entry.meta:
        meta["lms"] = entry.meta  # what the LMS's names said: its ids, the late flag (autograder/lms.py)
    if too_large:
        kept.write_text(json.dumps(meta, indent=1))
    else:
        kept.write_bytes(data)
    current_dir = course.submitted(student, lab)
    parts = submission_parts(current_dir, notebook)
    current = parts.get(notebook)
    what = f" of {notebook}.ipynb" if several else ""
    if current and current["timestamp"] > meta["timestamp"]:
        return {**row, "action": "archived", "detail": f"older than the current submission{what} of "
                                                       f"{current['timestamp']} ({current['file']}): kept in "
                                                       f"{kept.parent.name}/ only"}
    current_dir.mkdir(parents=True, exist_ok=True)
    path = current_dir / f"{notebook}.ipynb"
    if path.exists():
        path.unlink()
    if not too_large:
        path.write_bytes(data)
    parts[notebook] = meta
    summary = summarize(parts)
    (current_dir / "timestamp.txt").write_text(summary["timestamp"])
    (current_dir / "submission.json").write_text(json.dumps(summary, indent=1))
    detail = "too large: recorded, not copied" if too_large else ""
    if current:
        detail = (f"replaces the submission{what} of {current['timestamp']} ({current['file']}); both are kept in "
                  f"collected/{lab}/{student}/" + (f"; {detail}" if detail else ""))
        return {**row, "action": "replaced", "detail": detail}
    return {**row, "action": "collected", "detail": detail + (f"{'; ' if detail else ''}as {notebook}.ipynb"
                                                                if several else "")}


def submission_parts(folder: Path, notebook: str) -> dict:
    """{notebook: what was collected for it} from a submission.json (one written before labs had several
    notebooks holds one file: it is ``notebook``'s)."""
    path = folder / "submission.json"
    if not path.exists():
        return {}
    meta = json.loads(path.read_text())
    return dict(meta["notebooks"]) if "notebooks" in meta else {notebook: meta}


def summarize(parts: dict) -> dict:
    """submission.json: each notebook's file under "notebooks"; at the top, the submission as a whole (for a
    lab of one notebook, exactly that notebook's file): the latest time, and a SHA-256 that changes when any
    notebook does."""
    if len(parts) == 1:
        (only,) = parts.values()
        return {**only, "notebooks": parts}
    metas = [parts[n] for n in sorted(parts)]
    return {"file": ", ".join(m["file"] for m in metas), "size": sum(m["size"] for m in metas),
            "sha256": hashlib.sha256("|".join(f"{n}:{parts[n]['sha256']}" for n in sorted(parts)).encode())
            .hexdigest(),
            "too_large": any(m["too_large"] for m in metas), "max_bytes": max(m["max_bytes"] for m in metas),
            "timestamp": max(m["timestamp"] for m in metas),
            "collected_as": ", ".join(m["collected_as"] for m in metas), "notebooks": parts}


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

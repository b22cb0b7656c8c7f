"""Grading throughput: plain `nbgrader autograde` vs `python -m autograder grade --workers 1` and `--workers 2`.

    python bench/grading.py [--k 8] [--lab 03_mlp]

Grades K copies of a lab's solution (default Lab 3, K = 8) three ways, in one run,
each in a fresh temporary course folder:

  plain      nbgrader autograde LAB (one process, one notebook after the other, no sandbox)
  workers 1  python -m autograder grade LAB --workers 1 (sandbox, one worker)
  workers 2  python -m autograder grade LAB --workers 2 (sandbox, two workers)

and prints submissions per minute for each and the ratios: the sandbox's overhead
(plain vs workers 1) and the parallel speed-up (workers 2 vs plain).  Every kernel
uses one OpenMP thread in all three.  Each way must give every copy full marks,
or the run stops.  Timings on a shared machine are noisy: the ratios come from
one run, so the three see about the same load (the load average is printed).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbformat  # noqa: E402

from autograder import CONFIG_DIR, ROOT, nbgrader, solution_notebook, use_tool_path  # noqa: E402
from autograder.collect import collect  # noqa: E402
from autograder.course import Course  # noqa: E402
from autograder.grade import grade  # noqa: E402


def students(k):
    return [f"student-{i:02d}" for i in range(1, k + 1)]


def plain_nbgrader(lab: str, k: int, base: Path) -> float:
    course = base / "plain"
    shutil.copytree(ROOT / "solutions" / lab, course / "source" / lab)
    (course / "nbgrader_config.py").write_text(
        f"load_subconfig({str(CONFIG_DIR / 'nbgrader_config.py')!r})  # the kit's settings, then this course's\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.source_directory = 'source'\nc.CourseDirectory.release_directory = 'release'\n")
    nbgrader("generate_assignment", lab, "--force", cwd=course)
    for student in students(k):
        folder = course / "submitted" / student / lab
        folder.mkdir(parents=True)
        nbformat.write(solution_notebook(lab), folder / f"{lab}.ipynb")
    start = time.perf_counter()
    nbgrader("autograde", lab, "--create", "--force", cwd=course)
    seconds = time.perf_counter() - start
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students(k):
            submission = gb.find_submission(lab, student)
            if submission.score != submission.max_score:
                sys.exit(f"plain nbgrader gave {student} {submission.score}/{submission.max_score}: not a fair run")
    return seconds


def sandboxed(lab: str, k: int, base: Path, workers: int) -> float:
    root = base / f"workers-{workers}"
    download = base / f"download-{workers}"
    for student in students(k):
        (download / student).mkdir(parents=True)
        nbformat.write(solution_notebook(lab), download / student / f"{lab}.ipynb")
    course = Course(root)
    collect(lab, download, course, say=lambda *a: None)
    start = time.perf_counter()
    records = grade(lab, course, workers=workers, force=True, sandbox="full", say=lambda *a: None)
    seconds = time.perf_counter() - start
    for student, record in records.items():
        if record["score"] != record["max_score"] or record["status"] != "graded":
            sys.exit(f"grade --workers {workers} gave {student} {record['score']}/{record['max_score']} "
                     f"({record['status']}: {record['reason']}): not a fair run")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=8, help="copies of the solution to grade (8)")
    parser.add_argument("--lab", default="03_mlp", help="which lab's solution (03_mlp)")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be at least 1")
    use_tool_path()
    os.environ["OMP_NUM_THREADS"] = "1"
    print(f"grading {args.k} copies of the {args.lab} solution on {os.cpu_count()} cores; "
          f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        base = Path(tmp)
        seconds = {}
        for name, run in (("plain nbgrader", lambda: plain_nbgrader(args.lab, args.k, base)),
                          ("grade --workers 1", lambda: sandboxed(args.lab, args.k, base, 1)),
                          ("grade --workers 2", lambda: sandboxed(args.lab, args.k, base, 2))):
            seconds[name] = run()
            print(f"  {name:<18} {seconds[name]:7.1f} s  {60 * args.k / seconds[name]:6.2f} submissions/min",
                  flush=True)
    plain, one, two = seconds["plain nbgrader"], seconds["grade --workers 1"], seconds["grade --workers 2"]
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"speed-up, workers 2 vs plain nbgrader:   {plain / two:.2f}x  (target >= 1.5x)")
    print(f"sandbox overhead, workers 1 vs plain:    {100 * (one / plain - 1):+.1f} %  (target <= 20 %)")
    print(f"speed-up, workers 2 vs workers 1:        {one / two:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

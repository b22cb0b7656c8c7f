"""python -m autograder <command>: the instructor's commands.

  release [LAB ...]             stamp course.toml into solutions/, regenerate the student notebooks in notebooks/
  publish OUT                   write the student edition (notebooks, labkit, README) into OUT, to push for students
  results LAB [--jobs N]        regenerate a lab's recorded full-mode results (Lab 5; hours of CPU)
              [--cluster ADDR]  ... each sweep's runs trained side by side on a Dask cluster's workers
  collect LAB SOURCE            map an LMS download (zip or folder) to students; keep every file
                                (--lms canvas|moodle --roster EXPORT: that LMS's own names, docs/lms.md)
  grade LAB [--workers N]       autograde every collected submission, each in its own sandbox
            [--cluster ADDR]    ... or one Dask task per submission on a Dask cluster (tcp://HOST:PORT;
                                course.toml [grading] cluster; pip install -e ".[grader,cluster]")
  feedback LAB                  one HTML file per student: each test's result and message
  export                        every lab's scores in one CSV for the LMS (--lms: its gradebook import)
  report [LAB ...]              what the class got wrong: one self-contained HTML page per lab (no LAB: every
                                graded lab and a course page) in <course>/reports/; --anonymous for showing in class

The course folder (submissions, grades, feedback, gradebook) is the repository
root unless --course DIR or LABKIT_COURSE says otherwise; the gradebook is
<course>/gradebook.db unless --db URL (any SQLAlchemy URL; postgresql://USER@HOST/DB
is PostgreSQL through psycopg 3), LABKIT_GRADEBOOK or course.toml's [database] url
(docs/grading.md, "The gradebook on PostgreSQL").
"""
import argparse
import sys

from autograder.isolation import Limits


def _course(args):
    from autograder.course import Course
    from autograder.nbgrader_course import ensure_config

    course = Course(args.course, getattr(args, "db", None))
    note = ensure_config(course)  # nbgrader's own tools (formgrader, nbgrader autograde ...) in that folder
    if note:
        print(note, file=sys.stderr)
    return course


def main(argv=None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course", metavar="DIR", help="the course folder (default: $LABKIT_COURSE or the repo root)")
    with_db = argparse.ArgumentParser(add_help=False)
    with_db.add_argument("--db", metavar="URL", help="the gradebook, any SQLAlchemy URL, e.g. "
                                                     "postgresql://USER@HOST/DB (default: $LABKIT_GRADEBOOK, "
                                                     "course.toml [database] url, sqlite:///<course>/gradebook.db)")
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    rel = commands.add_parser("release", help="stamp course.toml into solutions/ and regenerate notebooks/")
    rel.add_argument("labs", nargs="*", help="lab ids (default: all)")
    pub = commands.add_parser("publish", help="write the student edition into OUT (to push as its own repository)")
    pub.add_argument("out", metavar="OUT", help="an empty or new folder, or an earlier edition (its .git is kept)")
    pub.add_argument("--settings", metavar="FILE", help="the course settings (default: the kit's course.toml)")
    res = commands.add_parser("results", help="regenerate a lab's recorded full-mode results (hours of CPU)")
    res.add_argument("lab", help="lab id, e.g. 05_lenet")
    res.add_argument("--jobs", type=int, default=2, help="kernels side by side, one core each (default 2)")
    res.add_argument("--cluster", metavar="ADDR",
                     help="train the runs on the Dask cluster at ADDR (tcp://HOST:PORT): each sweep's runs side by "
                          "side; the results land in the same cache and file")
    res.add_argument("--snapshot", action="store_true",
                     help="only write the file from the runs finished so far (no training)")

    col = commands.add_parser("collect", parents=[common], help="collect an LMS download (zip or folder) for LAB")
    col.add_argument("lab")
    col.add_argument("source", help="a zip file, a folder, or one .ipynb")
    col.add_argument("--pattern", help="regular expression with a (?P<student>...) group, matched against each "
                                       "path inside SOURCE (default: <student>/... or course.toml's [submission] file "
                                       "rule, <student>_<lab>.ipynb)")
    col.add_argument("--roster", help="with --lms none: file of allowed student ids (one per line, or CSV with the id "
                                      "first); with --lms canvas: Canvas's gradebook export; with --lms moodle: the "
                                      "assignment's grading worksheet (docs/lms.md)")
    col.add_argument("--lms", choices=["canvas", "moodle", "none"],
                     help="whose download SOURCE is (default: course.toml [submission] lms)")
    col.add_argument("--max-size", type=float, metavar="MB",
                     help="larger files are recorded, not copied (default: course.toml [limits] max_size_mb)")

    gra = commands.add_parser("grade", parents=[common, with_db], help="autograde every collected submission of LAB")
    gra.add_argument("lab")
    gra.add_argument("--workers", type=int, default=1, help="submissions graded at the same time (1)")
    gra.add_argument("--cluster", metavar="ADDRESS",
                     help="grade on the Dask cluster whose scheduler is at ADDRESS, e.g. tcp://HOST:8786, one task "
                          "per submission (default: course.toml [grading] cluster; none: this machine)")
    gra.add_argument("--force", action="store_true", help="grade again even unchanged submissions")
    gra.add_argument("--limit", type=int, help="grade at most this many pending submissions in this run")
    gra.add_argument("--sandbox", choices=["auto", "full", "off"], default="auto",
                     help="full: refuse to grade without the sandbox; auto (default): warn and grade without it "
                          "when it is unavailable; off: no sandbox (resource limits only)")
    for flag, key, what in [("--cell-timeout", "cell_timeout", "wall-clock seconds per cell"),
                            ("--notebook-timeout", "notebook_timeout", "wall-clock seconds per notebook"),
                            ("--memory", "memory_mb", "MB of address space per process; the whole tree gets 1 GB more"),
                            ("--max-procs", "max_procs", "processes + threads per submission"),
                            ("--threads", "threads", "OpenMP/MKL threads per kernel")]:
        gra.add_argument(flag, type=int, metavar="N", help=f"{what} (default: course.toml [limits] {key})")
    gra.add_argument("--max-size", type=float, metavar="MB",
                     help="larger files score 0 (default: course.toml [limits] max_size_mb)")

    fee = commands.add_parser("feedback", parents=[common, with_db], help="one HTML feedback file per student")
    fee.add_argument("lab")
    fee.add_argument("--no-outputs", action="store_true",
                     help="leave out the outputs of the student's own cells (sources and test results only)")

    exp = commands.add_parser("export", parents=[common, with_db], help="all labs' scores in one CSV for the LMS")
    exp.add_argument("--to", metavar="FILE", help="output file (default: <course>/grades/all_labs.csv)")
    exp.add_argument("--lms", choices=["canvas", "moodle", "none"],
                     help="whose gradebook import the CSV is for; none: a plain table with a total "
                          "(default: course.toml [submission] lms)")

    rep = commands.add_parser("report", parents=[common, with_db],
                              help="a class report after grading: one HTML page per lab (no LAB: all, and the course)")
    rep.add_argument("labs", nargs="*", metavar="LAB", help="lab ids (default: every graded lab, and a course page)")
    rep.add_argument("--anonymous", action="store_true",
                     help="students as 'student 1..N', no ids, names or links to their folders: to show in class "
                          "(written as <lab>-anonymous.html)")
    rep.add_argument("--out", metavar="DIR", help="where the pages go (default: <course>/reports)")

    args = parser.parse_args(argv)
    if args.command == "release":
        from autograder.release import release

        done = release(args.labs)
        print(f"released {len(done)} lab(s) into notebooks/: {', '.join(done)}")
    elif args.command == "publish":
        from autograder.publish import publish
        from autograder.settings import load

        publish(args.out, load(args.settings))
    elif args.command == "collect":
        from autograder.collect import collect

        course = _course(args)
        collect(args.lab, args.source, course, pattern=args.pattern, roster=args.roster,
                max_bytes=args.max_size and int(args.max_size * 2**20),
                lms=args.lms or ("none" if args.pattern else course.settings.lms))  # --pattern: files named by hand
    elif args.command == "grade":
        from autograder.grade import grade

        course = _course(args)
        limits = Limits.from_settings(course.settings, cell_timeout=args.cell_timeout,
                                      notebook_timeout=args.notebook_timeout, memory_mb=args.memory,
                                      nproc=args.max_procs, threads=args.threads)
        grade(args.lab, course, workers=args.workers, force=args.force, limits=limits, sandbox=args.sandbox,
              limit=args.limit, max_bytes=args.max_size and int(args.max_size * 2**20), cluster=args.cluster)
    elif args.command == "feedback":
        from autograder.feedback import feedback

        feedback(args.lab, _course(args), outputs=not args.no_outputs)
    elif args.command == "export":
        from autograder.export import export

        course = _course(args)
        export(course, args.to, lms=args.lms or course.settings.lms)
    elif args.command == "report":
        from autograder.report import report

        report(args.labs, _course(args), anonymous=args.anonymous, out=args.out)
    elif args.command == "results":
        from autograder.lab_results import regenerate, snapshot

        if args.snapshot:
            snapshot(args.lab)
        else:
            regenerate(args.lab, args.jobs, cluster=args.cluster)
    return 0


if __name__ == "__main__":
    sys.exit(main())

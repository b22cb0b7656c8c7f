"""python -m autograder <command>: the instructor's commands."""
import argparse
import sys

from autograder.lab_results import regenerate, snapshot
from autograder.release import release


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rel = commands.add_parser("release", help="regenerate the student notebooks in notebooks/ from solutions/")
    rel.add_argument("labs", nargs="*", help="lab ids (default: all)")
    res = commands.add_parser("results", help="regenerate a lab's recorded full-mode results (hours of CPU)")
    res.add_argument("lab", help="lab id, e.g. 05_lenet")
    res.add_argument("--jobs", type=int, default=2, help="kernels side by side, one core each (default 2)")
    res.add_argument("--snapshot", action="store_true",
                     help="only write the file from the runs finished so far (no training)")
    args = parser.parse_args(argv)
    if args.command == "release":
        done = release(args.labs)
        print(f"released {len(done)} lab(s) into notebooks/: {', '.join(done)}")
    elif args.command == "results":
        if args.snapshot:
            snapshot(args.lab)
        else:
            regenerate(args.lab, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

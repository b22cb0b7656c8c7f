"""python -m autograder <command>: the instructor's commands."""
import argparse
import sys

from autograder.release import release


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rel = commands.add_parser("release", help="regenerate the student notebooks in notebooks/ from solutions/")
    rel.add_argument("labs", nargs="*", help="lab ids (default: all)")
    args = parser.parse_args(argv)
    if args.command == "release":
        done = release(args.labs)
        print(f"released {len(done)} lab(s) into notebooks/: {', '.join(done)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

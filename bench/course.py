"""Time every lab end to end, one process per lab, and print a table: lab, mode, seconds, test accuracy.

    python bench/course.py                 # every lab in quick mode (what the autograder runs)
    python bench/course.py --full          # and in full mode (hours: Lab 5 reads its recorded results
                                           # unless LABKIT_RERUN=1, Lab 3 alone takes ~10 min)
    python bench/course.py --labs 03_mlp 05_lenet --skip-epoch

Each lab's solution notebook is executed by nbclient in a fresh process and kernel
(OMP_NUM_THREADS=1, like the grader; in quick mode with NBGRADER_EXECUTION set, as
when autograding, so Lab 5 trains every run instead of reading its run cache), and its
headline test accuracy is read from the kernel afterwards.  Then one LeNet-5 epoch on
Fashion-MNIST (the base model of Lab 5,
Adam, batch 100) is timed with labkit's loader and with the classic per-sample pipeline
(PIL image + ToTensor per item through a DataLoader, as torchvision's datasets do),
interleaved, fastest of --repeats, and printed as a ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The headline test accuracy of each lab: an expression evaluated in the lab's kernel after Run All.
HEADLINE = {
    "01_xor": "lk.evaluate(xor_model, lk.TensorLoader(x4, y4, batch_size=4, seed=0)).accuracy",
    "02_softmax": "test_eval.accuracy",
    "03_mlp": "lk.evaluate(final_model, test_loader).accuracy",
    "04_activations": "max(r['test_acc'] for r in results.values())",
    "05_lenet": "best.test_acc",
}
MARK = "BENCH-RESULT "


def run_lab(lab: str, full: bool) -> dict:
    """Execute one lab's solution notebook in this process; return seconds and the headline accuracy."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    expr = HEADLINE.get(lab, "float('nan')")
    nb.cells.append(nbformat.v4.new_code_cell(f"import json as _j; print({MARK!r} + _j.dumps(float({expr})))"))
    client = NotebookClient(nb, timeout=None, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "solutions" / lab)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    accuracy = float(text.split(MARK, 1)[1].split()[0]) if MARK in text else float("nan")
    return {"lab": lab, "mode": "full" if full else "quick", "seconds": seconds, "accuracy": accuracy}


def lab_in_subprocess(lab: str, full: bool) -> dict:
    env = dict(os.environ, LABKIT_QUICK="0" if full else "1", OMP_NUM_THREADS="1")
    if not full:  # as the autograder runs it: nothing read from the run caches of earlier sessions
        env["NBGRADER_EXECUTION"] = "autograde"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run([sys.executable, __file__, "--one", lab, *(["--full"] if full else [])],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        return {"lab": lab, "mode": "full" if full else "quick", "seconds": float("nan"), "accuracy": float("nan"),
                "error": "\n".join(tail)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def lenet_epoch_ratio(repeats: int) -> tuple[float, float]:
    """Seconds for one base-LeNet-5 epoch on Fashion-MNIST: (classic per-sample pipeline, labkit loader)."""
    import torch
    from loader import PerSampleMNIST  # bench/loader.py: the classic pipeline, torchvision's steps
    from torch import nn

    import labkit as lk

    torch.set_num_threads(1)
    train, _ = lk.load_fashion_mnist(verbose=False)

    def lenet():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                             nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(), nn.Linear(120, 84),
                             nn.Tanh(), nn.Linear(84, 10))

    def epoch(batches) -> float:
        model = lenet()
        optimizer, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
        start, seen = time.perf_counter(), 0
        for x, y in batches:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            seen += len(y)
        assert seen == len(train)
        return time.perf_counter() - start

    classic = torch.utils.data.DataLoader(PerSampleMNIST(train.images, train.labels), batch_size=100, shuffle=True)
    ours = train.loader(batch_size=100, shuffle=True, seed=0)
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        best = [min(best[0], epoch(classic)), min(best[1], epoch(ours))]
    return best[0], best[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="also run every lab in full mode")
    parser.add_argument("--labs", nargs="*", help="lab ids (default: all)")
    parser.add_argument("--skip-epoch", action="store_true", help="skip the LeNet-5 loader comparison")
    parser.add_argument("--repeats", type=int, default=2, help="timed LeNet-5 epochs per pipeline (fastest counts)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # worker: one lab in this process, JSON on the last line
        print(json.dumps(run_lab(args.one, args.full)))
        return 0
    from autograder import labs

    rows, failed = [], False
    for lab in args.labs or labs():
        for full in [False, True] if args.full else [False]:
            row = lab_in_subprocess(lab, full)
            rows.append(row)
            print(f"{row['lab']:16s} {row['mode']:5s} {row['seconds']:8.1f} s   test accuracy {row['accuracy']:.2%}",
                  flush=True)
            if "error" in row:
                failed = True
                print("    failed:\n    " + row["error"].replace("\n", "\n    "), flush=True)
    print("\n| lab | mode | seconds | test accuracy |\n|---|---|---:|---:|")
    for row in rows:
        print(f"| {row['lab']} | {row['mode']} | {row['seconds']:.1f} | {row['accuracy']:.2%} |")
    quick = [r["seconds"] for r in rows if r["mode"] == "quick"]
    print(f"\nquick mode, all labs: {sum(quick):.0f} s")
    if not args.skip_epoch:
        sys.path.insert(0, str(ROOT / "bench"))
        classic, ours = lenet_epoch_ratio(args.repeats)
        print(f"\nOne base LeNet-5 epoch on Fashion-MNIST (60 000 images, batch 100, Adam, 1 thread), fastest of "
              f"{args.repeats}:\n  classic per-sample pipeline {classic:.2f} s, labkit loader {ours:.2f} s, "
              f"ratio {classic / ours:.2f}x")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

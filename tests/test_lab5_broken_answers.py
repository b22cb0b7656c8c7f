"""Lab 5's graded tests catch the mistakes students make: section 2's convolution and pooling, and the
base LeNet-5's accuracy check, which trains the student's own network in quick and in full mode.

Each graded test cell of section 2 (visible and hidden part) runs in this process, without a kernel or
data: against the solution it must pass, and against a broken answer made from the solution by changing
one line it must fail with a failed check (a CheckError, not a crash). The mistakes the lab warns about
must already fail the visible part, the part students run; a forbidden call (F.conv2d, F.max_pool2d)
gives the right numbers, so only the hidden part catches it.
"""
import pytest
from broken_answers import LabCells

from autograder import solution_notebook
from labkit.checks import CheckError
from labkit.diagnose import FirstBatchError

LAB = "05_lenet"
PRELUDE = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"  # the lab's imports
ANSWERS = ("conv_output_size", "conv2d_loops", "conv2d_unfold", "max_pool2d", "avg_pool2d", "conv_parameters",
           "lenet5")
TESTS = ("test_conv_output_size", "test_conv2d_loops", "test_conv2d_unfold", "test_max_pool2d", "test_avg_pool2d",
         "test_conv_parameters")
SIZE, LOOPS, UNFOLD = "test_conv_output_size", "test_conv2d_loops", "test_conv2d_unfold"
PATCH = "x[b, :, i * stride:i * stride + kh, j * stride:j * stride + kw]"
SAME_STRIDE = "stride = kernel_size if stride is None else stride"

# mistake: (answer cell, a line of the solution, what the broken answer has instead, the tests that must
# fail, whether the visible part alone must already fail)
BROKEN = {
    "output size off by one": ("conv_output_size", "// stride + 1", "// stride", [SIZE, LOOPS], True),
    "padding ignored in the output size": ("conv_output_size", "size + 2 * padding - kernel", "size - kernel",
                                           [SIZE, LOOPS], True),
    "stride ignored in the output size": ("conv_output_size", "// stride + 1", "+ 1", [SIZE], True),
    "a float output size (/ for //)": ("conv_output_size", "// stride", "/ stride", [SIZE], True),
    "loops: stride ignored": ("conv2d_loops", PATCH, "x[b, :, i:i + kh, j:j + kw]", [LOOPS], True),
    "loops: bias not added": ("conv2d_loops", "y[b, o] += bias[o]", "pass", [LOOPS], True),
    "loops: flipped kernel": ("conv2d_loops", "(patch * weight[o]).sum()", "(patch * weight[o].flip(-2, -1)).sum()",
                              [LOOPS], True),
    "loops: float32 output for float64 input": ("conv2d_loops", ", dtype=x.dtype)", ")", [LOOPS], True),
    "loops: F.conv2d inside": ("conv2d_loops", "return y", "return F.conv2d(x, weight, bias, stride=stride)",
                               [LOOPS], False),
    "unfold: bias not added": ("conv2d_unfold", "y = y + bias.reshape(1, c_out, 1)", "y = y", [UNFOLD], True),
    "unfold: flipped kernel": ("conv2d_unfold", "weight.reshape(c_out, -1)", "weight.flip(-2, -1).reshape(c_out, -1)",
                               [UNFOLD], True),
    "unfold: kernel rows and columns swapped": ("conv2d_unfold", "weight.reshape(c_out, -1)",
                                                "weight.transpose(2, 3).reshape(c_out, -1)", [UNFOLD], True),
    "unfold: H_out and W_out swapped": ("conv2d_unfold", "y.reshape(n, c_out, h_out, w_out)",
                                        "y.reshape(n, c_out, w_out, h_out)", [UNFOLD], True),
    "unfold: F.conv2d inside": ("conv2d_unfold", "return y.reshape(n, c_out, h_out, w_out)",
                                "return F.conv2d(x, weight, bias, stride=stride, padding=padding)", [UNFOLD], False),
    "max pool taking the mean": ("max_pool2d", "windows.amax(dim=(-2, -1))", "windows.mean(dim=(-2, -1))",
                                 ["test_max_pool2d"], True),
    "max pool: stride defaults to 1": ("max_pool2d", SAME_STRIDE, "stride = 1 if stride is None else stride",
                                       ["test_max_pool2d"], True),
    "max pool: F.max_pool2d inside": ("max_pool2d", "return windows.amax(dim=(-2, -1))",
                                      "return F.max_pool2d(x, kernel_size, stride)", ["test_max_pool2d"], False),
    "avg pool dividing by k, not k * k": ("avg_pool2d", "/ (kernel_size * kernel_size)", "/ kernel_size",
                                          ["test_avg_pool2d"], True),
    "avg pool taking the max": ("avg_pool2d", "windows.sum(dim=(-2, -1)) / (kernel_size * kernel_size)",
                                "windows.amax(dim=(-2, -1))", ["test_avg_pool2d"], True),
    "avg pool: stride defaults to 1": ("avg_pool2d", SAME_STRIDE, "stride = 1 if stride is None else stride",
                                       ["test_avg_pool2d"], True),
    "avg pool: F.avg_pool2d inside": ("avg_pool2d", "return windows.sum(dim=(-2, -1)) / (kernel_size * kernel_size)",
                                      "return F.avg_pool2d(x, kernel_size, stride)", ["test_avg_pool2d"], False),
    "conv parameters without the biases": ("conv_parameters", "c_out * (c_in * k * k + 1)", "c_out * c_in * k * k",
                                           ["test_conv_parameters"], True),
    "conv parameters with a k-long kernel": ("conv_parameters", "c_in * k * k + 1", "c_in * k + 1",
                                             ["test_conv_parameters"], True),
    "dense parameters without the biases": ("conv_parameters", "n_in * n_out + n_out", "n_in * n_out",
                                            ["test_conv_parameters"], True),
}


LAB_CELLS = LabCells(LAB, PRELUDE, ANSWERS)


@pytest.mark.parametrize("test_id", TESTS)
def test_the_solution_passes_the_section_2_tests(test_id):
    LAB_CELLS.run(LAB_CELLS.solution(), test_id)


@pytest.mark.parametrize("mistake", BROKEN)
def test_a_broken_answer_fails_its_test(mistake):
    LAB_CELLS.check_breakage(*BROKEN[mistake], hidden_only=not BROKEN[mistake][4])


# -- The base LeNet-5's graded accuracy check trains the student's own LeNet5, in both modes --------------------
# The lab's cells run here in order (settings, data, the LeNet5 answer, the base run, its graded check), under
# nbgrader's flag (no cache) with LABKIT_QUICK set. Quick mode trains the base run itself; full mode reads it from the
# recorded results, and the check trains the student's network for one epoch on all 60 000 images.
LENET_LINE = "act, pool = self.ACTIVATIONS[activation], self.POOLING[pooling]"
POOLS = "*conv(1, c1, 2), pool(2), *conv(c1, c2, 0), pool(2)"
LENET_BROKEN = {  # mistake: (the line of the solution, the broken line, the modes whose accuracy check fails)
    "sigmoid for every activation": (LENET_LINE, "act, pool = nn.Sigmoid, self.POOLING[pooling]", ("quick", "full")),
    "pooling skipped": (POOLS, "*conv(1, c1, 2), *conv(c1, c2, 0)", ("quick", "full")),
    # A linear network learns as fast as the base in 2 epochs on 3 000 images (72.4 % against 69.9 %, seed 0): quick
    # mode's accuracy check cannot see it, test_lenet5_options does (an Identity where the Tanh should be).
    "no activation at all": (LENET_LINE, "act, pool = nn.Identity, self.POOLING[pooling]", ("full",)),
}
LAB_STEPS = ("QUICK = lk.quick_mode()", "train, test = lk.load_fashion_mnist()")


def run_base_check(monkeypatch, mode: str, lenet_source: str) -> None:
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("LABKIT_QUICK", "1" if mode == "quick" else "0")
    cells = [c.source for c in solution_notebook(LAB).cells]
    steps = [next(s for s in cells if step in s) for step in LAB_STEPS]
    steps += [lenet_source, next(s for s in cells if s.startswith("BASE = dict(TRAINING")),
              LAB_CELLS.sources["test_base_accuracy"]]
    namespace = {"display": lambda *_: None}
    exec("import labkit as lk\n" + PRELUDE, namespace)
    for step in steps:
        exec(compile(step, "<lab 5 cell>", "exec"), namespace)


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_the_solution_passes_the_base_accuracy_check(monkeypatch, mode, fashion_mnist):
    run_base_check(monkeypatch, mode, LAB_CELLS.solution()["lenet5"])


@pytest.mark.parametrize("mode", ["quick", "full"])
@pytest.mark.parametrize("mistake", LENET_BROKEN)
def test_a_broken_lenet5_fails_the_base_accuracy_check(monkeypatch, mistake, mode, fashion_mnist):
    right, wrong, failing = LENET_BROKEN[mistake]
    solution = LAB_CELLS.solution()["lenet5"]
    assert solution.count(right) == 1, f"the solution of lenet5 no longer has {right!r}: update LENET_BROKEN"
    if mode in failing:
        with pytest.raises((CheckError, FirstBatchError)):
            run_base_check(monkeypatch, mode, solution.replace(right, wrong))
    else:
        run_base_check(monkeypatch, mode, solution.replace(right, wrong))
        with pytest.raises(CheckError):
            LAB_CELLS.run({**LAB_CELLS.solution(), "lenet5": solution.replace(right, wrong)}, "test_lenet5_options")

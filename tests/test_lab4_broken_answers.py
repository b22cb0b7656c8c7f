"""Lab 4's maxout, batch-norm and dropout tests catch the mistakes students make.

Each graded test cell of section 1.6 (maxout) and of section 5 that checks an answer (visible and hidden
part) runs in this process, without a kernel or data: against the solution it must pass, and against a broken answer
made from the solution by changing one line it must fail with a failed check (a CheckError, not a
crash). The mistakes the lab warns about must already fail the visible part, the part students run.
"""
import pytest
from broken_answers import LabCells

LAB = "04_activations"
PRELUDE = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"  # the lab's imports
ANSWERS = ("maxout", "batch_norm", "dropout")
TESTS = ("test_maxout", "test_batch_norm_train", "test_batch_norm_eval", "test_dropout")

# mistake: (answer cell, a line of the solution, what the broken answer has instead, the tests that must
# fail, whether the visible part alone must already fail)
MAXOUT_RETURN = "x.unflatten(-1, (width // pieces, pieces)).amax(dim=-1)"
BROKEN = {
    "maxout over the wrong axis": ("maxout", MAXOUT_RETURN, "x.unflatten(-1, (width // pieces, pieces)).amax(dim=-2)",
                                   ["test_maxout"], True),
    "maxout over interleaved groups": ("maxout", MAXOUT_RETURN,
                                       "x.unflatten(-1, (pieces, width // pieces)).amax(dim=-2)",
                                       ["test_maxout"], True),
    "maxout over every m-th feature, by view": ("maxout", MAXOUT_RETURN, "x.view(x.shape[0], pieces, -1).amax(dim=1)",
                                                ["test_maxout"], True),
    "maxout of [N, width] inputs only": ("maxout", MAXOUT_RETURN, "x.view(x.shape[0], -1, pieces).amax(dim=-1)",
                                         ["test_maxout"], False),
    "maxout detached from autograd": ("maxout", MAXOUT_RETURN, MAXOUT_RETURN + ".detach()", ["test_maxout"], False),
    "min instead of max": ("maxout", MAXOUT_RETURN, "x.unflatten(-1, (width // pieces, pieces)).amin(dim=-1)",
                           ["test_maxout"], True),
    "mean instead of max": ("maxout", MAXOUT_RETURN, "x.unflatten(-1, (width // pieces, pieces)).mean(dim=-1)",
                            ["test_maxout"], True),
    "no ValueError for a width that is not a multiple": ("maxout", "if width % pieces != 0:", "if False:",
                                                        ["test_maxout"], True),
    "another exception for a width that is not a multiple": ("maxout", "raise ValueError(", "raise RuntimeError(",
                                                             ["test_maxout"], True),
    "unbiased variance to normalise": ("batch_norm", "var = x.var(dim=0, unbiased=False)", "var = x.var(dim=0)",
                                       ["test_batch_norm_train"], True),
    "biased variance in running_var": ("batch_norm", "momentum * var.detach() * n / (n - 1)",
                                       "momentum * var.detach()", ["test_batch_norm_train"], True),
    "momentum the wrong way round": ("batch_norm", "(1 - momentum) * running_mean + momentum * mean.detach()",
                                     "momentum * running_mean + (1 - momentum) * mean.detach()",
                                     ["test_batch_norm_train"], True),
    "running_mean updated in place": ("batch_norm", "(1 - momentum) * running_mean + momentum * mean.detach()",
                                      "running_mean.mul_(1 - momentum).add_(momentum * mean.detach())",
                                      ["test_batch_norm_train"], True),
    "running statistics not detached": ("batch_norm", "momentum * mean.detach()", "momentum * mean",
                                        ["test_batch_norm_train"], False),
    "batch statistics in evaluation mode": ("batch_norm", "mean, var = running_mean, running_var",
                                            "mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)",
                                            ["test_batch_norm_eval"], True),
    "no eps": ("batch_norm", "torch.sqrt(var + eps)", "torch.sqrt(var)", ["test_batch_norm_eval"], False),
    "no 1/(1-p) scaling": ("dropout", "return x * keep / (1 - p)", "return x * keep", ["test_dropout"], True),
    "dropout active in evaluation mode": ("dropout", "if not training or p == 0:", "if p == 0:",
                                          ["test_dropout"], True),
    "keeps with probability p": ("dropout", ">= p", "< p", ["test_dropout"], True),
    "ignores the generator": ("dropout", "generator=generator, ", "", ["test_dropout"], True),
}


LAB_CELLS = LabCells(LAB, PRELUDE, ANSWERS)


@pytest.mark.parametrize("test_id", TESTS)
def test_the_solution_passes_its_tests(test_id):
    LAB_CELLS.run(LAB_CELLS.solution(), test_id)


@pytest.mark.parametrize("mistake", BROKEN)
def test_a_broken_answer_fails_its_test(mistake):
    LAB_CELLS.check_breakage(*BROKEN[mistake])

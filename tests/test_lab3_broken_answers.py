"""Lab 3's max-norm test catches the mistakes students make.

The graded test cell of `apply_max_norm` (section 5.6; visible and hidden part) runs in this process,
without a kernel or data: against the solution it must pass, and against a broken answer made from the
solution by changing one line it must fail with a failed check (a CheckError, not a crash). Every
mistake here must already fail the visible part, the part students run.
"""
import pytest
from broken_answers import LabCells

LAB = "03_mlp"
# the lab's imports
PRELUDE = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\nimport labkit as lk\n"
ANSWERS = ("apply_max_norm",)
TESTS = ("test_apply_max_norm",)

# mistake: (answer cell, a line of the solution, what the broken answer has instead, the tests that must
# fail, whether the visible part alone must already fail)
BROKEN = {
    "biases rescaled too": ("apply_max_norm", "weight.mul_(scale)",
                            "weight.mul_(scale); layer.bias.mul_(scale.squeeze(1))", ["test_apply_max_norm"], True),
    "rows under the bound scaled up to it": ("apply_max_norm", "scale = (max_norm / norms).clamp(max=1.0)",
                                             "scale = max_norm / norms", ["test_apply_max_norm"], True),
    "scale capped from below instead of above": ("apply_max_norm", ".clamp(max=1.0)", ".clamp(min=1.0)",
                                                 ["test_apply_max_norm"], True),
    "norms of the columns instead of the rows": ("apply_max_norm", "weight.norm(dim=1, keepdim=True)",
                                                 "weight.norm(dim=0, keepdim=True)", ["test_apply_max_norm"], True),
    "one norm for the whole matrix": ("apply_max_norm", "weight.norm(dim=1, keepdim=True)", "weight.norm()",
                                      ["test_apply_max_norm"], True),
    "squared norm": ("apply_max_norm", "weight.norm(dim=1, keepdim=True)",
                     "weight.pow(2).sum(dim=1, keepdim=True)", ["test_apply_max_norm"], True),
    "a new Parameter instead of in place": ("apply_max_norm", "weight.mul_(scale)",
                                            "layer.weight = nn.Parameter(weight * scale)",
                                            ["test_apply_max_norm"], True),
    "a new tensor that is thrown away": ("apply_max_norm", "weight.mul_(scale)", "weight = weight * scale",
                                         ["test_apply_max_norm"], True),
    "only the first Linear layer": ("apply_max_norm", "weight.mul_(scale)", "weight.mul_(scale); break",
                                    ["test_apply_max_norm"], True),
}


LAB_CELLS = LabCells(LAB, PRELUDE, ANSWERS)


@pytest.mark.parametrize("test_id", TESTS)
def test_the_solution_passes_the_max_norm_test(test_id):
    LAB_CELLS.run(LAB_CELLS.solution(), test_id)


@pytest.mark.parametrize("test_id", TESTS)
def test_the_solution_passes_the_visible_part(test_id):
    LAB_CELLS.run(LAB_CELLS.solution(), test_id, visible_only=True)


@pytest.mark.parametrize("mistake", BROKEN)
def test_a_broken_answer_fails_its_test(mistake):
    LAB_CELLS.check_breakage(*BROKEN[mistake])

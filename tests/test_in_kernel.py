"""labkit inside a real Jupyter kernel: figures show once, progress bars and errors render."""
import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CELLS = [
    "import torch, labkit as lk\n"
    "lk.set_seed(0)\n"
    "train, test = lk.load_mnist(verbose=False)\n"
    "model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))",
    # Cell 1: training with progress bars, then a figure as the last expression.
    "history = lk.fit(model, train.subset(2000).loader(100, shuffle=True), epochs=2,\n"
    "                 loss_fn=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),\n"
    "                 val_loader=test.subset(500).loader(500))\n"
    "lk.plot_history(history)",
    # Cell 2: a figure assigned, not shown; then shown once with display().
    "fig = lk.show_images(test.images[:8], test.labels[:8], classes=test.classes)",
    "display(fig)",
    # Cell 4: pyplot owns no figure, so nothing is shown a second time at the end of a cell.
    "import matplotlib.pyplot as plt\nassert plt.get_fignums() == [], plt.get_fignums()",
]


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return nb


def images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.outputs)


def test_a_returned_figure_shows_exactly_once(executed):
    assert [images(cell) for cell in executed.cells] == [0, 1, 0, 1, 0]


def test_fit_shows_progress_in_the_notebook(executed):
    outputs = executed.cells[1].outputs
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, f"expected tqdm progress widgets, got {[o.output_type for o in outputs]}"
    assert not [o for o in outputs if o.output_type == "error"]


def test_a_check_failure_reads_well_in_the_notebook():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch, labkit as lk\nlk.check_shape(torch.zeros(64, 784), (64, 10), name='logits')")])
    with pytest.raises(CellExecutionError):
        NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    error = nb.cells[0].outputs[-1]
    assert error.ename == "CheckError"
    assert error.evalue.startswith("logits: wrong shape")
    assert "expected: (64, 10)" in error.evalue and "got:      (64, 784)" in error.evalue


def run_cells(*sources, allow_errors=True):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in sources])
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=allow_errors).execute()
    return nb


def plain(cell) -> str:
    return "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)


CHECK = 'lk.check_lab("demo", tests={"test_a": 2, "test_b": 1, "test_c": 1}, submit_as="<id>_demo.ipynb")'


def test_the_hand_in_check_notes_each_graded_test_as_it_runs():
    nb = run_cells("import labkit as lk\nlk.watch_tests()\nlk.watch_tests()  # twice: still one watcher",
                   "# graded test: test_b, 1 point\nassert 1 + 1 == 2",
                   "# graded test: test_a, 2 points\nfrom labkit.checks import check_equal\n"
                   "check_equal(2 + 2, 5, name='the sum')",
                   "# not a graded test\nraise ValueError('ignored')", CHECK)
    text = plain(nb.cells[-1])
    assert text.splitlines()[:4] == [
        "demo: 1 of 3 graded tests pass in this kernel (1 of 4 points); 1 failed, 1 not run",
        "  FAILED   test_a  2 points   CheckError: the sum: wrong value",
        "  passed   test_b  1 point",
        "  not run  test_c  1 point"], text
    assert "ran out of order" in text and "Tests that did not run score 0" in text
    assert "Hand in this notebook as <id>_demo.ipynb." in text
    html = nb.cells[-1].outputs[0]["data"]["text/html"]
    assert "<table>" in html and "&#10008; <b>failed</b>" in html


def test_the_hand_in_check_says_when_it_was_not_watching():
    nb = run_cells("import labkit as lk", "# graded test: test_a, 2 points\npass", CHECK)
    text = plain(nb.cells[-1])
    assert "0 of 3 graded tests pass" in text and "run the setup cell at the top first" in text


def test_the_hand_in_check_leaves_grading_to_nbgrader(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    nb = run_cells("import labkit as lk\nlk.watch_tests()", "# graded test: test_a, 2 points\npass", CHECK)
    assert plain(nb.cells[-1]).startswith("demo: graded by nbgrader\nnbgrader ran this notebook")


def test_a_demo_figure_reaches_the_browser_as_base64_png_text():
    """The demos set an Output widget's state; raw PNG bytes there reach JupyterLab as an object
    (the page showed `data:image/png;base64,[object Object]`), so the state must carry text."""
    nb = run_cells("import base64, labkit as lk\n"
                   "demo = lk.gradient_descent_demo(lr=0.05)\n"
                   "demo.lr.value = 0.25\n"
                   "data = demo.output.outputs[0]['data']['image/png']\n"
                   "print(type(data).__name__, base64.b64decode(data)[:8] == b'\\x89PNG\\r\\n\\x1a\\n')",
                   allow_errors=False)
    assert "".join(o.get("text", "") for o in nb.cells[0].outputs).strip() == "str True"


# ----------------------------------------------------------------------------- live training curves

LIVE = ("import torch, labkit as lk\n"
        "lk.set_seed(0)\n"
        "train, test = lk.load_mnist(verbose=False)\n"
        "model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))\n"
        "history = lk.fit(model, train.subset(1000).loader(100, shuffle=True), epochs=3, live=True,\n"
        "                 loss_fn=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),\n"
        "                 val_loader=test.subset(500).loader(500), progress={progress})\n"
        "print('trained', len(history))")


def iopub(code, kernel_name="python3", env=None, timeout=180):
    """Run ``code`` in a fresh kernel and return the iopub messages it caused, in order."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name=kernel_name, env=dict(os.environ) if env is None else env)
    try:
        parent = client.execute(code)
        messages = []
        while True:
            msg = client.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != parent:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return messages
            messages.append(msg)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def live_images(messages):
    """(display_id, message type) of every PNG the kernel sent."""
    return [(m["content"].get("transient", {}).get("display_id"), m["msg_type"]) for m in messages
            if m["msg_type"] in ("display_data", "update_display_data") and "image/png" in m["content"]["data"]]


def check_live_curves(messages):
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert not errors, errors
    images = live_images(messages)
    # One image, shown after epoch 1 and replaced in place after epochs 2 and 3.
    assert [kind for _, kind in images] == ["display_data", "update_display_data", "update_display_data"], images
    assert len({display_id for display_id, _ in images}) == 1 and images[0][0]
    assert any("trained 3" in m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")


@pytest.mark.parametrize("progress", [True, False])
def test_live_curves_redraw_one_image_after_every_epoch(progress):
    check_live_curves(iopub(LIVE.replace("{progress}", str(progress))))


def test_live_curves_stay_quiet_under_the_autograder():
    env = {**os.environ, "NBGRADER_EXECUTION": "autograde"}
    messages = iopub(LIVE.replace("{progress}", "False"), env=env)
    assert live_images(messages) == []
    assert any("trained 3" in m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")


def test_an_ablation_draws_live_curves_only_for_runs_it_trains(tmp_path):
    code = ("import torch, labkit as lk\n"
            "train, test = lk.load_fashion_mnist(verbose=False)\n"
            "def mlp(hidden=16):\n"
            "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, hidden), torch.nn.ReLU(),\n"
            "                               torch.nn.Linear(hidden, 10))\n"
            f"ab = lk.Ablation(mlp, base=dict(epochs=2, subset=600), train=train, test=test.subset(500),\n"
            f"                 cache_dir={str(tmp_path)!r}, live=True, progress=False)\n"
            "first = ab.run()\n"
            "again = lk.Ablation(mlp, base=dict(epochs=2, subset=600), train=train, test=test.subset(500),\n"
            f"                   cache_dir={str(tmp_path)!r}, live=True, progress=False).run()\n"
            "print('cached', again.cached, again.test_acc == first.test_acc)")
    messages = iopub(code)
    assert not [m for m in messages if m["msg_type"] == "error"], messages
    # The first run trains (an image after epoch 1, replaced after epoch 2); the second comes from the cache.
    assert [kind for _, kind in live_images(messages)] == ["display_data", "update_display_data"]
    assert any("cached True True" in m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")

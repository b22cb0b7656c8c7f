"""The labs in a real JupyterLab, driven in headless Chromium (Debian's, through Playwright).

A JupyterLab server from this environment serves a temporary copy of the course
on 127.0.0.1 with a random token, in quick mode.  The Lab 3 release's demo is run
and its learning-rate slider moved past the divergence threshold; every solution
notebook is run in full ("Run All") and saved, and the saved file must hold no
error output.  Screenshots go to test-artifacts/browser/.  The server and the
browser are shut down whatever happens.
"""
import json
import secrets
import shutil
import time

import pytest
from lab_server import chromium, jupyterlab, require_chromium, wait_until

from autograder import ROOT, labs

ARTIFACTS = ROOT / "test-artifacts" / "browser"

require_chromium()  # or the module skips (fails under CI=true), saying what to install


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """JupyterLab on a copy of the course (its autosave must never touch the repository)."""
    root = tmp_path_factory.mktemp("course")
    for folder in ("notebooks", "solutions"):
        shutil.copytree(ROOT / folder, root / folder)
    labconfig = root / ".jupyter" / "labconfig"
    labconfig.mkdir(parents=True)  # no "news" pop-up over the screenshots
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = {"LABKIT_QUICK": "1", "JUPYTER_CONFIG_DIR": str(root / ".jupyter")}
    with jupyterlab(root, root / "jupyterlab.log", env=env,
                    args=["--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
                          "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]) as lab:
        yield {"base": lab.base, "token": lab.token, "root": root}


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        yield browser


PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in front


def open_notebook(browser, server, path: str):
    """Open ``path`` alone, in a fresh workspace (JupyterLab would reopen earlier pages' tabs)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    workspace = secrets.token_hex(4)
    page.goto(f"{server['base']}/lab/workspaces/{workspace}/tree/{path}?reset&token={server['token']}")
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=120_000)
    wait_until(lambda: kernel_idle(page), 120, f"the kernel of {path} to start")
    return page


KERNEL_STATUS = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = widget && widget.sessionContext && widget.sessionContext.session
        && widget.sessionContext.session.kernel;
    return kernel ? kernel.status : 'none';
}"""


def kernel_idle(page) -> bool:
    """True when the notebook's kernel is connected and idle and no cell is queued or running."""
    queued = page.locator(f"{PANEL} .jp-InputPrompt", has_text="[*]").count()
    return queued == 0 and page.evaluate(KERNEL_STATUS) == "idle"


def command(page, name: str):
    """Run a JupyterLab command (the app is exposed by --LabApp.expose_app_in_browser)."""
    page.evaluate(f"() => window.jupyterapp.commands.execute({name!r})")


def run_cell_containing(page, text: str):
    cell = page.locator(f"{PANEL} .jp-CodeCell", has=page.locator(".jp-InputArea-editor", has_text=text)).first
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    wait_until(lambda: kernel_idle(page), 300, f"the cell with {text!r} to finish")
    return cell


def test_lab3_learning_rate_demo_reacts_to_the_slider(browser, server):
    page = open_notebook(browser, server, "notebooks/03_mlp/03_mlp.ipynb")
    try:
        run_cell_containing(page, "import labkit as lk")
        cell = run_cell_containing(page, "gradient_descent_demo(")
        slider = cell.locator(".widget-slider, .widget-hslider").first
        slider.wait_for(timeout=60_000)
        assert cell.locator(".widget-hslider").count() >= 3, "expected learning-rate, steps and momentum sliders"
        image = cell.locator(".jp-OutputArea-output img").first
        image.wait_for(timeout=60_000)
        before = image.get_attribute("src")
        page.screenshot(path=str(ARTIFACTS / "lab3-demo-before.png"), full_page=False)
        assert "diverged" not in cell.inner_text()

        handle = cell.locator(".widget-hslider").first.locator(".noUi-handle, .ui-slider-handle").first
        handle.focus()
        for _ in range(20):  # each key press moves the log slider by one step (10^0.05)
            page.keyboard.press("ArrowRight")
        wait_until(lambda: "diverged" in cell.inner_text(), 60, "the 'diverged' label")
        wait_until(lambda: kernel_idle(page), 60, "every redraw to finish")  # one per key press
        time.sleep(1)  # the last redraw's image reaches the page after the kernel went idle
        assert "diverged" in cell.inner_text()
        assert cell.locator(".jp-OutputArea-output img").first.get_attribute("src") != before, "the plot did not change"
        cell.screenshot(path=str(ARTIFACTS / "lab3-demo-diverged.png"))
        page.screenshot(path=str(ARTIFACTS / "lab3-demo-after.png"), full_page=False)
    finally:
        page.close()


@pytest.mark.parametrize("lab", labs())
def test_solution_runs_all_in_jupyterlab_without_errors(browser, server, lab):
    page = open_notebook(browser, server, f"solutions/{lab}/{lab}.ipynb")
    try:
        command(page, "notebook:run-all-cells")
        started = lambda: page.locator(f"{PANEL} .jp-InputPrompt", has_text="[*]").count() > 0  # noqa: E731
        wait_until(lambda: started() or kernel_idle(page), 60, f"{lab} to start running")
        wait_until(lambda: kernel_idle(page), 600, f"{lab} to run all cells")
        command(page, "docmanager:save")
        path = server["root"] / "solutions" / lab / f"{lab}.ipynb"
        wait_until(lambda: any(c.get("outputs") for c in json.loads(path.read_text())["cells"]), 60,
                   f"{lab} to be saved with its outputs")
        page.screenshot(path=str(ARTIFACTS / f"{lab}-run-all.png"), full_page=False)
        cells = json.loads(path.read_text())["cells"]
        errors = [(o.get("ename"), o.get("evalue", "")[:200]) for c in cells if c["cell_type"] == "code"
                  for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{lab} has error outputs in JupyterLab: {errors}"
        unexecuted = [c["source"][:60] for c in cells if c["cell_type"] == "code" and c["execution_count"] is None
                      and "".join(c["source"]).strip()]
        assert not unexecuted, f"cells that did not run: {unexecuted}"
        tests = sum(bool(c["metadata"].get("nbgrader", {}).get("grade")) for c in cells)
        check = "".join("".join(o.get("data", {}).get("text/plain", "")) for o in cells[-1]["outputs"])
        assert f"{tests} of {tests} graded tests pass in this kernel" in check, check  # the hand-in check
    finally:
        page.close()

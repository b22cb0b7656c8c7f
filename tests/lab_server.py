"""A real JupyterLab server on 127.0.0.1 for the tests: started, waited for, always stopped."""
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from autograder import tool_env

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; a browser is never downloaded
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def require_chromium():
    """Playwright's sync API, once Debian's chromium and Playwright are found; otherwise skip (fail under
    CI=true) saying what to install."""
    from conftest import require

    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium (sudo apt-get install chromium; "
                               "`make test` does it when run as root); no browser is ever downloaded")
    return pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency: run `make setup`")


@contextlib.contextmanager
def chromium():
    """Headless Debian chromium through Playwright, closed whatever happens."""
    playwright = require_chromium()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.5):
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout`` seconds (a hang guard)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def jupyterlab(root: Path, log_path: Path, *, python=sys.executable, env: dict | None = None, cwd=None,
               args=()):
    """JupyterLab from ``python`` serving ``root`` with a random token; yields (base URL, token, process).
    ``env`` is added to the tools' environment; ``cwd`` is where it starts (nbgrader reads its config there)."""
    port, token = free_port(), secrets.token_hex(16)
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(python), "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
         *args, *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else [])],
        cwd=cwd, env=dict(tool_env(), **(env or {})), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).status == 200
            except OSError:
                return process.poll() is not None  # stop waiting if the server died
        wait_until(up, 120, "JupyterLab to start")
        assert process.poll() is None, Path(log_path).read_text()[-3000:]
        yield SimpleNamespace(base=base, token=token, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()

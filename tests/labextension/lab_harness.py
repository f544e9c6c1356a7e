"""A real JupyterLab in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; never a browser
a test tool downloads), for the browser tests and benchmarks/panel_100k.py.

:class:`Lab` starts ``jupyter lab`` on a free port in a temporary root (no token, as root where we are root, the
app exposed as ``window.jupyterapp``), opens a notebook in Chromium and runs its cells the way the Run button does.
:func:`echo_loop_wat` is the guest they run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--no-sandbox",  # root, in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

ARTIFACTS = Path(os.environ.get("WASINN_TEST_ARTIFACTS", Path(__file__).resolve().parent / "artifacts"))


def chromium() -> str | None:
    """Debian's chromium, or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if chromium() is None:
        return "no chromium: apt-get install -y chromium (.ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "no playwright for Python: pip install -e '.[test]'"
    from jupyter_core.paths import jupyter_path

    if not any((Path(p) / "wasinn-jupyter" / "package.json").is_file() for p in jupyter_path("labextensions")):
        return "the wasinn-jupyter labextension is not installed: pip install -e . builds it (node and npm needed)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def notebook(cells: list[str]) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
            for i, src in enumerate(cells)
        ],
    }


class Lab:
    """One JupyterLab server and one Chromium page on a notebook of ``cells``."""

    def __init__(self, cells: list[str], name: str = "timeline.ipynb", width: int = 1500, height: int = 950) -> None:
        self.cells = cells
        self.name = name
        self.size = {"width": width, "height": height}
        self.root = Path(tempfile.mkdtemp(prefix="wasinn-lab-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[bytes] | None = None
        self.page: Any = None
        self.console: list[str] = []  # the page's errors, for a failing test's report
        self._pw: Any = None
        self._browser: Any = None

    # -- the server ----------------------------------------------------------------------------------------------

    def start(self) -> Lab:
        home = self.root / "home"
        settings = home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        # No news or update checks (nothing outside is reachable) and no toasts over the panel.
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
        )
        (self.root / "work").mkdir()
        (self.root / "work" / self.name).write_text(json.dumps(notebook(self.cells)))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_DATA_DIR": str(home / "data"),  # its signing key; labextensions come from the prefix
            "WASINN_CACHE_DIR": str(home / "wasinn-cache"),
            "IPYTHONDIR": str(home / "ipython"),
        }
        log = (self.root / "server.log").open("wb")
        self.server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                f"--ServerApp.port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                "--ServerApp.port_retries=0",
                "--IdentityProvider.token=",
                "--ServerApp.password=",
                "--ServerApp.disable_check_xsrf=True",
                "--ServerApp.allow_root=True",
                f"--ServerApp.root_dir={self.root / 'work'}",
                f"--LabApp.user_settings_dir={home / 'settings'}",
                f"--LabApp.workspaces_dir={home / 'workspaces'}",
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.news_url=",
            ],
            cwd=self.root / "work",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not start:\n{self.log()[-3000:]}")
            time.sleep(0.3)
        return self

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- the browser ---------------------------------------------------------------------------------------------

    def open(self) -> Any:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(
            executable_path=chromium(),
            headless=True,
            args=CHROMIUM_FLAGS,  # Playwright gives each launch a fresh --user-data-dir of its own
        )
        context = self._browser.new_context(viewport=self.size, accept_downloads=True)
        self.page = context.new_page()
        self.page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))
        self.page.on(
            "console", lambda msg: self.console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None
        )
        self.page.set_default_timeout(120_000)
        self.page.goto(f"{self.url}/lab/tree/{self.name}")
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " return k && k.status === 'idle'; }",
            timeout=180_000,
        )
        return self.page

    def run_cell(self, index: int, wait: bool = True) -> list[dict[str, Any]]:
        """Run cell ``index`` as the Run button does; with ``wait``, its outputs once it is done."""
        script = """async ([index, wait]) => {
            const app = window.jupyterapp;
            const nb = app.shell.currentWidget;
            nb.content.activeCellIndex = index;
            const done = app.commands.execute('notebook:run-cell');
            window.__wasinnRun = done;
            if (!wait) return [];
            await done;
            return nb.content.widgets[index].model.outputs.toJSON();
        }"""
        return list(self.page.evaluate(script, [index, wait]))

    def wait_run(self) -> None:
        self.page.evaluate("() => window.__wasinnRun")

    def outputs(self, index: int) -> list[dict[str, Any]]:
        return list(
            self.page.evaluate(
                "i => window.jupyterapp.shell.currentWidget.content.widgets[i].model.outputs.toJSON()", index
            )
        )

    def text(self, index: int) -> str:
        parts = []
        for out in self.outputs(index):
            if out.get("output_type") == "stream":
                parts.append(out["text"] if isinstance(out["text"], str) else "".join(out["text"]))
            elif out.get("output_type") == "error":
                parts.append(f"{out['ename']}: {out['evalue']}")
            else:
                data = out.get("data", {})
                text = data.get("text/plain", "")
                parts.append(text if isinstance(text, str) else "".join(text))
        return "".join(parts)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    # -- the panel -----------------------------------------------------------------------------------------------

    PANEL = "[...window.jupyterapp.shell.widgets('right')].find(w => w.id === 'wasinn-timeline')"

    def panel(self, expression: str) -> Any:
        """Evaluate ``expression`` with ``panel`` bound to the TimelinePanel widget."""
        return self.page.evaluate(f"() => {{ const panel = {self.PANEL}; return {expression}; }}")

    def full_redraws(self, times: int) -> list[float]:
        """Milliseconds of ``times`` redraws of every mark the panel holds (not only the new ones)."""
        script = f"Array.from({{length: {times}}}, () => (panel.plot.invalidate(), panel.render(), panel.lastRenderMs))"
        return [float(ms) for ms in self.panel(script)]

    def stats(self) -> dict[str, str]:
        return dict(self.page.evaluate("() => ({...document.querySelector('.wasinn-timeline').dataset})"))

    def close(self) -> None:
        for step in (
            lambda: self._browser and self._browser.close(),
            lambda: self._pw and self._pw.stop(),
        ):
            try:
                step()
            except Exception:  # noqa: BLE001 (a browser that already went away)
                pass
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        shutil.rmtree(self.root, ignore_errors=True)


# -- the guest ------------------------------------------------------------------------------------------------


def echo_loop_wat(rounds: int) -> str:
    digits = str(rounds)
    return f"""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 100 the graph's name, 200 graph, 204 context, 208 bytes written, 300 dims [4], 320 the tensor struct
  ;; {{dims 300, 1 dim, f32, data 400, 16 bytes}}, 400 input, 500 output, 600 the text, 0 the iovec
  (data (i32.const 100) "echo")
  (data (i32.const 300) "\\04\\00\\00\\00")
  (data (i32.const 320) "\\2c\\01\\00\\00\\01\\00\\00\\00\\01\\00\\00\\00\\90\\01\\00\\00\\10\\00\\00\\00")
  (data (i32.const 600) "echoed {digits}\\n")
  (func (export "_start") (local $i i32) (local $ctx i32)
    (if (call $load_by_name (i32.const 100) (i32.const 4) (i32.const 200)) (then unreachable))
    (if (call $init (i32.load (i32.const 200)) (i32.const 204)) (then unreachable))
    (local.set $ctx (i32.load (i32.const 204)))
    (loop $round
      (f32.store (i32.const 400) (f32.convert_i32_u (local.get $i)))
      (f32.store (i32.const 412) (f32.mul (f32.convert_i32_u (local.get $i)) (f32.const 0.5)))
      (if (call $set_input (local.get $ctx) (i32.const 0) (i32.const 320)) (then unreachable))
      (if (call $compute (local.get $ctx)) (then unreachable))
      (if (call $get_output (local.get $ctx) (i32.const 0) (i32.const 500) (i32.const 16) (i32.const 208))
        (then unreachable))
      ;; the echo must give back what went in
      (if (f32.ne (f32.load (i32.const 500)) (f32.load (i32.const 400))) (then unreachable))
      (if (f32.ne (f32.load (i32.const 512)) (f32.load (i32.const 412))) (then unreachable))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $round (i32.lt_u (local.get $i) (i32.const {rounds}))))
    (i32.store (i32.const 0) (i32.const 600))
    (i32.store (i32.const 4) (i32.const {len(digits) + 8}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def calls_for(rounds: int) -> int:
    """The wasi-nn calls one run of :func:`echo_loop_wat` makes."""
    return 2 + 3 * rounds

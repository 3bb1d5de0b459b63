"""Every code example of the documentation site (docs/src) runs, in order, page by page.

Each page gets a fresh profile root (PXCLUSTER_DIR); a page that starts with
``<!-- docs-test: cluster N -->`` also gets a running N-engine cluster of the default
profile, as a reader who followed "Getting started" has. Blocks run by their language:
``python`` in one namespace per page, ``bash`` in a shell (with this venv's commands first on
PATH), ``ipython`` as cells of a real IPython shell, ``toml`` through ``load_config`` (so
every setting shown is one pxcluster accepts). Other blocks (``text``, ``console``) are
output, not run. A block preceded by ``<!-- docs-test: skip REASON -->`` is not run; the
reason is mandatory and says where that behaviour is tested instead. A block marked
``<!-- docs-test: fails -->`` shows an error: it must fail. Sections a page takes from the
README at build time (``<!-- generated: readme "TITLE" -->``) are prose and tables; the
README's own examples are run by the tests its sections name.
"""

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from pxcluster.profile import load_config, load_launcher_config
from pxcluster.testing import cluster_in

DOCS = Path(__file__).parents[2] / "docs" / "src"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
SKIP = re.compile(r"<!-- docs-test: skip (.+?) -->\s*$")
FAILS = "<!-- docs-test: fails -->"  # the block shows an error: it must raise (python) or fail
CLUSTER = re.compile(r"<!-- docs-test: cluster (\d+) -->")
RUN = ("python", "bash", "ipython", "toml")


def blocks(page):
    """(line number, language, code, skip reason or None, must fail) of each fenced block."""
    text = page.read_text()
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        line = text.count("\n", 0, m.start()) + 1
        yield line, m[1], m[2], skip[1] if skip else None, FAILS in before


def pages():
    return sorted(DOCS.glob("*.md"))


def test_every_page_has_examples_or_says_why_not():
    """A page with no runnable block is a reference page (generated) or says so."""
    for page in pages():
        runnable = [b for b in blocks(page) if b[1] in RUN]
        text = page.read_text()
        reference = ("<!-- generated:", "--8<--", "\n::: ")  # generated, included, API docs
    assert runnable or any(mark in text for mark in reference), page.name


def test_skips_give_a_reason():
    for page in pages():
        for line, _lang, _code, reason, _fails in blocks(page):
            assert reason is None or len(reason) > 15, f"{page.name}:{line}: say why"


class Shell:
    """A real IPython shell for ``ipython`` blocks (made on first use, torn down after)."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.ip = None

    def run(self, code, fails=False):
        if self.ip is None:
            from IPython.core.interactiveshell import InteractiveShell
            from traitlets.config import Config

            os.environ["IPYTHONDIR"] = str(self.tmp_path / "ipython")
            config = Config()
            config.HistoryManager.hist_file = ":memory:"
            self.ip = InteractiveShell.instance(config=config)
        result = self.ip.run_cell(code)
        if fails:
            assert not result.success, f"cell was to fail:\n{code}"
        elif not result.success:
            raise AssertionError(f"cell failed: {result.error_in_exec or result.error_before_exec}")

    def close(self):
        if self.ip is not None:
            from IPython.core.interactiveshell import InteractiveShell

            with contextlib.suppress(Exception):
                self.ip.run_line_magic("unload_ext", "pxcluster")
            InteractiveShell.clear_instance()


def _stop_everything(root):
    for folder in root.glob("profile_*"):
        if (folder / "pid" / "cluster.json").exists():
            subprocess.run([sys.executable, "-m", "pxcluster.cli.cluster", "stop",
                            "--profile-dir", str(folder)], capture_output=True, timeout=60,
                           check=False)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    root = Path(os.environ["PXCLUSTER_DIR"])  # conftest gives every test its own
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for name in ("__main__",):
        monkeypatch.setitem(sys.modules, name, sys.modules[name])
    monkeypatch.setattr(sys, "displayhook", sys.displayhook)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    wanted = CLUSTER.search(page.read_text())
    namespace = {"__name__": "__docs__"}
    shell = Shell(tmp_path)
    with contextlib.ExitStack() as stack:
        stack.callback(_stop_everything, root)
        stack.callback(shell.close)
        if wanted:
            stack.enter_context(cluster_in(root / "profile_default", n=int(wanted[1])))
        for line, lang, code, skip, fails in blocks(page):
            if skip or lang not in RUN:
                continue
            where = f"{page.name}:{line} ({lang})"
            if lang == "python":
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    try:
                        exec(compile(code, where, "exec"), namespace)
                    except Exception as exc:
                        if not fails:
                            raise AssertionError(f"{where} failed:\n{code}") from exc
                    else:
                        assert not fails, f"{where} was to raise:\n{code}"
            elif lang == "bash":
                done = subprocess.run(["bash", "-euo", "pipefail", "-c", code],
                                      capture_output=True, text=True, timeout=180, check=False)
                assert done.returncode == 0, f"{where} failed:\n{code}\n{done.stdout}{done.stderr}"
            elif lang == "ipython":
                shell.run(code, fails)
            else:
                config = tmp_path / "pxcluster.toml"
                config.write_text(code)
                load_config(config)  # raises on an unknown key or a bad value
                for name in set(tomllib.loads(code)) - {"controller", "engine", "launcher"}:
                    load_launcher_config(config, name)  # [launcher] keys and their types
        for value in namespace.values():  # clients the page left open
            if type(value).__name__ in ("MultiEngineClient", "TaskClient"):
                value.close()


@pytest.mark.timeout(180)
def test_site_builds_in_strict_mode_and_loads_nothing_from_the_network(tmp_path):
    """The README's build command, into a temporary folder: no warning (a broken link, a
    docstring griffe cannot read), every generated page filled in, no CDN in any page."""
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=DOCS.parent.parent, capture_output=True, text=True, timeout=170, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout + built.stderr
    cli = (site / "cli.html").read_text()
    assert "pxcluster top" in cli
    assert "pxengine" in cli
    config = (site / "configuration.html").read_text()
    for key in ("heartbeat_timeout", "dashboard_port", "walltime"):
        assert f"<code>{key}</code>" in config
    assert "MultiEngineClient" in (site / "api.html").read_text()
    for page in site.glob("*.html"):
        html = page.read_text()  # what a browser would fetch: scripts, styles, images
        assert not re.search(r"<(script|img|iframe)[^>]*src=\"https?://", html), page.name
        assert not re.search(r"<link[^>]*href=\"https?://", html), page.name

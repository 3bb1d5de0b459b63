"""The example notebook, run end to end in a real Jupyter kernel against a real cluster.

``examples/interactive.ipynb`` connects to the running cluster of the default profile, as
a user's notebook does; the test starts that cluster in its own profile root (the
``PXCLUSTER_DIR`` the kernel inherits) and checks what each cell shows.
"""

import re
from pathlib import Path

import pytest

from pxcluster.testing import cluster_in

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).parents[2] / "examples" / "interactive.ipynb"


def text_of(cell):
    """Everything a cell printed or displayed as text, in order."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            parts.append(output.data.get("text/plain", "") + "\n")
        elif output.output_type == "error":
            parts.append("\n".join(output.traceback) + "\n")
    return "".join(parts)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cell_with(notebook, source_start):
    return next(c for c in notebook.cells if c.source.startswith(source_start))


@pytest.mark.timeout(120)
def test_example_notebook_runs_in_a_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    root = Path(tmp_path / "pxroot")  # PXCLUSTER_DIR, set by conftest for the kernel too

    with cluster_in(root / "profile_default", n=4):
        client = nbclient.NotebookClient(
            notebook,
            timeout=60,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()

    ids = cell_with(notebook, "from pxcluster import client")
    assert ids.outputs[0].data["text/plain"] == "[0, 1, 2, 3]"

    # once the cell is done its live lines are replaced by one block per engine, then
    # each engine's value (whose HTML form keeps long values beside their prefix)
    loop = cell_with(notebook, "%%px\nimport os, time").outputs
    stdout = "".join(o.text for o in loop if o.output_type == "stream" and o.name == "stdout")
    assert stdout == "".join(
        f"[stdout:{e}]\nstep 0 on pid True\nstep 1 on pid True\nstep 2 on pid True\n"
        for e in range(4)
    )
    values = [o.data for o in loop if o.output_type == "display_data"]
    assert [v["text/plain"] for v in values] == [f"[{e}] Out[2]: 10" for e in range(4)]
    assert all('class="pxcluster-value"' in v["text/html"] for v in values)

    result = cell_with(notebook, "%result").outputs[0]
    assert result.data["text/plain"].startswith("<Results List>\n[0] In [2]: import os, time")
    assert '<table class="pxcluster-results">' in result.data["text/html"]

    header, table = cell_with(notebook, "%%px --targets 0\nclass Table").outputs
    assert ">Out[0:3]:</div>" in header.data["text/html"]
    assert "text/plain" not in header.data  # terminals show the value's own prefix only
    assert table.data["text/html"] == "<table><tr><td>5</td></tr><tr><td>6</td></tr></table>"
    assert table.data["text/plain"].startswith("[0] Out[3]: <__main__.Table object")

    figure = cell_with(notebook, "%%px --targets 1\nimport matplotlib").outputs
    assert [o.output_type for o in figure] == ["display_data", "display_data"]
    assert ">[output:1]</div>" in figure[0].data["text/html"]
    assert figure[1].data["image/png"].startswith("iVBORw0KGgo")

    error = cell_with(notebook, "%px 1 / (a - 5)").outputs
    assert [o.output_type for o in error] == ["error"]
    assert error[0].ename == "CompositeError"
    coloured = "\n".join(error[0].traceback)
    assert "\x1b[" in coloured  # coloured as the kernel colours its own tracebacks
    shown = ANSI.sub("", coloured)
    assert "[0:execute]: ZeroDivisionError: division by zero" in shown
    assert "<engine 0 In [" in shown
    assert "1 / (a - 5)" in shown
    assert "site-packages" not in shown
    assert "/pxcluster/" not in shown

    waited = text_of(cell_with(notebook, "pending = mec.execute"))
    assert "4/4" in waited
    assert "True" not in waited  # wait_interactive() leaves no stray value
    for source in ("pending = mec.execute", "squares = "):  # bars: finished text, no widget
        data = [o.get("data", {}) for o in cell_with(notebook, source).outputs]
        assert not any("application/vnd.jupyter.widget-view+json" in d for d in data)
    assert "<Results List>" in waited
    assert "100%" in text_of(cell_with(notebook, "squares = "))
    assert cell_with(notebook, "squares = ").outputs[-1].data["text/plain"] == "85344"

    autopx = [c for c in notebook.cells if c.source == "%autopx"]
    assert text_of(autopx[0]) == "Auto Parallel Enabled\nType %autopx to disable\n"
    assert text_of(autopx[1]) == "Auto Parallel Disabled\n"
    assert cell_with(notebook, "mec.pull('b')").outputs[0].data["text/plain"] == "[15, 15, 15, 15]"

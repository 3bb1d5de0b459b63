"""The example notebook, run end to end in a real Jupyter kernel against a real cluster.

``examples/interactive.ipynb`` connects to the running cluster of the default profile, as
a user's notebook does; the test starts that cluster in its own profile root (the
``PXCLUSTER_DIR`` the kernel inherits) and checks what each cell shows.
"""

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

    loop = text_of(cell_with(notebook, "%%px\nimport os, time"))
    for engine in range(4):
        lines = [line for line in loop.splitlines() if line.startswith(f"[{engine}] ")]
        assert lines == [
            f"[{engine}] step 0 on pid True",
            f"[{engine}] step 1 on pid True",
            f"[{engine}] step 2 on pid True",
            f"[{engine}] Out[2]: 10",
        ]

    result = cell_with(notebook, "%result").outputs[0]
    assert result.data["text/plain"].startswith("<Results List>\n[0] In [2]: import os, time")
    assert '<table class="pxcluster-results">' in result.data["text/html"]

    table = cell_with(notebook, "%%px --targets 0\nclass Table").outputs[0]
    assert table.data["text/html"] == "<table><tr><td>5</td></tr><tr><td>6</td></tr></table>"
    assert table.data["text/plain"].startswith("[0] Out[3]: <__main__.Table object")

    figure = cell_with(notebook, "%%px --targets 1\nimport matplotlib").outputs
    assert [o.output_type for o in figure] == ["display_data"]
    assert figure[0].data["image/png"].startswith("iVBORw0KGgo")

    error = cell_with(notebook, "%px 1 / (a - 5)").outputs
    assert [o.output_type for o in error] == ["error"]
    assert error[0].ename == "CompositeError"
    shown = "\n".join(error[0].traceback)
    assert "[0:execute]: ZeroDivisionError: division by zero" in shown
    assert "<engine 0 In [" in shown
    assert "1 / (a - 5)" in shown
    assert "site-packages" not in shown
    assert "/pxcluster/" not in shown

    waited = text_of(cell_with(notebook, "pending = mec.execute"))
    assert "4/4" in waited
    assert "<Results List>" in waited
    assert "100%" in text_of(cell_with(notebook, "squares = "))
    assert cell_with(notebook, "squares = ").outputs[-1].data["text/plain"] == "85344"

    autopx = [c for c in notebook.cells if c.source == "%autopx"]
    assert text_of(autopx[0]) == "Auto Parallel Enabled\nType %autopx to disable\n"
    assert text_of(autopx[1]) == "Auto Parallel Disabled\n"
    assert cell_with(notebook, "mec.pull('b')").outputs[0].data["text/plain"] == "[15, 15, 15, 15]"

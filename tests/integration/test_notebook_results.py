"""After a failed command: what the magics show, in a real IPython shell on a real cluster.

A command that fails on one engine still shows the other engine's value; ``%result`` then
shows the table with the error in it (no exception, so a notebook's "run all" goes on), and
``%pxtb`` shows the tracebacks again.
"""

import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from pxcluster import CompositeError


@pytest.fixture
def px(tmp_path, monkeypatch, cluster2):
    """An IPython shell (no colours, to compare text) with a client of cluster2 active."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(sys, "displayhook", sys.displayhook)
    monkeypatch.delattr(sys, "last_value", raising=False)  # an earlier test's error
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "nocolor"
    shell = InteractiveShell.instance(config=config)
    mec = cluster2.client()
    shell.user_ns["mec"] = mec
    assert shell.run_cell("mec.activate()").success
    yield shell
    mec.close()
    shell.run_line_magic("unload_ext", "pxcluster")
    InteractiveShell.clear_instance()


def run(shell, cell):
    with capture_output() as captured:
        result = shell.run_cell(cell)
    return result, captured


def test_result_after_a_failure_shows_the_table_with_the_error(px):
    _, captured = run(px, "%pxtb")
    assert "no remote error yet" in captured.stderr + captured.stdout

    run(px, "%px id_ = 0")
    run(px, "%px --targets 1 id_ = 1")
    result, captured = run(px, "%%px\nprint('before')\n'ok' if id_ else 1 / 0")
    assert isinstance(result.error_in_exec, CompositeError)
    values = [o.data["text/plain"] for o in captured.outputs]
    assert len(values) == 1, (captured.stdout, captured.stderr, captured.outputs)  # engine 1 shows
    assert values[0].startswith("[1] Out[")
    assert values[0].endswith(": 'ok'")

    result, captured = run(px, "%result")
    assert result.success  # no exception: "run all" goes on
    table = result.result
    assert [(e["id"], "error" in e) for e in table] == [(0, True), (1, False)]
    assert table[0]["stdout"] == "before\n"
    text = repr(table)
    assert "[0] Err[" in text
    assert "ZeroDivisionError: division by zero" in text
    assert "[1] Out[" in text
    html = table._repr_html_()
    assert ">Err</th>" in html
    assert "File &quot;&lt;engine 0 In [" in html  # engine 0's traceback, escaped

    result, captured = run(px, "%pxtb")
    assert result.success
    shown = captured.stdout + captured.stderr
    assert "[0:execute]: " in shown
    assert "ZeroDivisionError: division by zero" in shown
    assert "[1:execute]" not in shown  # engine 1 did not fail
    _, captured = run(px, "%pxtb 1")
    assert "no traceback of engine(s) [1]" in captured.stdout + captured.stderr


def test_group_outputs_default_is_configurable(px):
    magics = px.magics_manager.registry["ParallelMagics"]
    assert magics.group_outputs == "type"  # ipyparallel's default

    result, captured = run(px, "%pxconfig --group-outputs engine")
    assert result.success
    assert "group_outputs=engine" in captured.stdout
    assert magics.group_outputs == "engine"

    assert run(px, "%config ParallelMagics.group_outputs = 'order'")[0].success
    assert magics.group_outputs == "order"

    result, captured = run(px, "%pxconfig --group-outputs colour")
    assert not result.success
    assert "give one of type, engine, order" in captured.stdout + captured.stderr
    result, _ = run(px, "%%px --group-outputs engine\nprint('fine')")
    assert result.success

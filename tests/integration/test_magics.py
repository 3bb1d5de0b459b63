"""The IPython extension, driven through a real InteractiveShell against a real cluster.

Each test runs cells as a user types them (``shell.run_cell``) and checks what the user
would see: printed lines, displayed outputs, errors, and what the engines then hold.
Output is captured with IPython's own ``capture_output``, which also records the rich
display data the magics publish.
"""

import os
import signal
import sys
import threading

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from pxcluster import CompositeError
from pxcluster.client import active_client
from pxcluster.testing import wait_for

T = 10  # seconds any single wait may take before the test fails instead of hanging


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """A fresh IPython shell (no history file, its own IPYTHONDIR), torn down afterwards."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    for name in ("__main__",):  # the shell installs its namespace as __main__
        monkeypatch.setitem(sys.modules, name, sys.modules[name])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(sys, "displayhook", sys.displayhook)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "nocolor"  # plain text to compare (colour: test_notebook)
    ip = InteractiveShell.instance(config=config)
    yield ip
    ip.run_line_magic("unload_ext", "pxcluster")
    InteractiveShell.clear_instance()


@pytest.fixture
def px(shell, mec):
    """The shell with ``mec`` activated, as ``mec.activate()`` in a session does."""
    shell.user_ns["mec"] = mec
    assert shell.run_cell("mec.activate()").success
    yield shell
    mec.close()  # also deactivates it


def run(shell, cell):
    """Run ``cell``; return (result, captured output)."""
    with capture_output() as captured:
        result = shell.run_cell(cell)
    return result, captured


def displayed(captured):
    """The mime bundles displayed while capturing."""
    return [output.data for output in captured.outputs]


# -- loading and activating ----------------------------------------------------------------


def test_load_ext_registers_magics_and_asks_for_a_client(shell):
    assert shell.run_cell("%load_ext pxcluster").success
    assert {"px", "autopx", "result"} <= set(shell.magics_manager.magics["line"])
    assert "px" in shell.magics_manager.magics["cell"]

    result, captured = run(shell, "%px a = 5")

    assert active_client() is None
    assert not result.success
    assert "no active pxcluster client" in captured.stderr + captured.stdout
    assert "mec.activate()" in captured.stderr + captured.stdout

    assert shell.run_cell("%load_ext pxcluster").success  # again: nothing added twice
    matchers = [type(m).__name__ for m in shell.Completer.custom_matchers]
    assert matchers.count("RemoteNameMatcher") == 1
    assert shell.run_cell("%unload_ext pxcluster").success
    assert "px" not in shell.magics_manager.magics["line"]
    assert "RemoteNameMatcher" not in {type(m).__name__ for m in shell.Completer.custom_matchers}
    assert shell.custom_exceptions == ()


def test_activate_loads_the_extension_and_the_magics_follow_the_active_client(shell, cluster4):
    first = cluster4.client()
    second = cluster4.client(targets=[1])
    shell.user_ns.update(first=first, second=second)
    assert "px" not in shell.magics_manager.magics["line"]

    assert shell.run_cell("first.activate()").success
    assert "px" in shell.magics_manager.magics["line"]
    assert active_client() is first
    run(shell, "%px who = 'first'")

    assert shell.run_cell("second.activate()").success
    assert active_client() is second
    run(shell, "%px who = 'second'")

    assert first.pull("who", timeout=T) == ["first", "second", "first", "first"]
    second.close()
    assert active_client() is None


# -- %px and %%px ----------------------------------------------------------------------------


def test_px_runs_a_line_and_shows_output_and_values_per_engine(px, mec):
    assert run(px, "%px a = 5")[0].success
    assert mec.pull("a", timeout=T) == [5, 5, 5, 5]

    result, captured = run(px, "%px print(a * 2)")

    assert result.success
    assert result.result is None  # nothing shown twice: the output was shown live
    assert sorted(captured.stdout.splitlines()) == [f"[{i}] 10" for i in range(4)]

    result, captured = run(px, "%px a + 1")

    assert [d["text/plain"] for d in displayed(captured)] == [f"[{i}] Out[3]: 6" for i in range(4)]


def test_px_does_not_expand_local_variables(px, mec):
    px.user_ns["local_only"] = "here"
    run(px, "%px s = '{local_only} $local_only'")
    assert mec.pull("s", timeout=T) == ["{local_only} $local_only"] * 4


def test_px_cell_with_targets_block_and_local(px, mec):
    result, captured = run(px, "%%px --targets 0,2\nb = 7\nprint('b set')")
    assert result.success
    assert sorted(captured.stdout.splitlines()) == ["[0] b set", "[2] b set"]
    assert mec.execute("'b' in dir()", timeout=T)[0]["display"] == "True"
    assert [r["display"] for r in mec.execute("'b' in dir()", timeout=T)] == [
        "True",
        "False",
        "True",
        "False",
    ]

    result, _ = run(px, "%%px --noblock --targets 1:3\nc = 3")
    pending = result.result
    assert type(pending).__name__ == "PendingResult"
    assert [r["id"] for r in pending.get_result(timeout=T)] == [1, 2]

    result, captured = run(px, "%%px --local\nimport math\nroot = math.sqrt(16)")
    assert result.success
    assert px.user_ns["root"] == 4.0
    assert mec.pull("root", timeout=T) == [4.0] * 4

    result, captured = run(px, "%px --targets nine a = 1")
    assert not result.success
    assert "--targets 'nine'" in captured.stderr + captured.stdout


def test_px_follows_the_clients_block_and_targets(px, mec):
    mec.block = False
    mec.targets = [3]

    result, _ = run(px, "%px d = 4")

    assert [r["id"] for r in result.result.get_result(timeout=T)] == [3]
    result, _ = run(px, "%px --block print(d)")
    assert result.result is None


def test_result_shows_the_last_command_in_the_seeds_layout(px, mec):
    run(px, "%px c = 'speed'")
    run(px, "%px print(c)")

    result, _ = run(px, "%result")

    expected = ["<Results List>"]
    for i in range(4):
        expected += [f"[{i}] In [2]: print(c)", f"[{i}] Out[2]: speed", ""]
    assert repr(result.result) == "\n".join(expected).rstrip("\n")
    mec.execute("e = 1", targets=[0], timeout=T)
    result, _ = run(px, "%result --targets 0:2")
    assert repr(result.result) == "\n".join(
        ["<Results List>", "[0] In [3]: e = 1", "[1] In [2]: print(c)", "[1] Out[2]: speed"]
    )


# -- %autopx -----------------------------------------------------------------------------------


def test_autopx_sends_every_cell_until_switched_off(px, mec):
    result, captured = run(px, "%autopx")
    assert captured.stdout == "Auto Parallel Enabled\nType %autopx to disable\n"

    assert run(px, "x = 40")[0].success
    assert run(px, "y = x + 2")[0].success
    result, captured = run(px, "for i in range(2):\n    print(y + i)\n")
    assert sorted(captured.stdout.splitlines()) == sorted(
        f"[{e}] {v}" for e in range(4) for v in (42, 43)
    )
    assert "x" not in px.user_ns  # nothing ran here
    result, _ = run(px, "%result --targets 0")  # magics still run here
    assert "[0] In [3]: for i in range(2):" in repr(result.result)

    result, captured = run(px, "%autopx")
    assert captured.stdout == "Auto Parallel Disabled\n"
    assert run(px, "x = 1")[0].success
    assert px.user_ns["x"] == 1
    assert mec.pull("x", timeout=T) == [40] * 4


def test_autopx_in_non_blocking_mode_returns_pending_results(px, mec):
    mec.block = False
    run(px, "%autopx")
    result, _ = run(px, "z = 9")
    run(px, "%autopx")
    assert type(result.result).__name__ == "PendingResult"
    result.result.get_result(timeout=T)
    assert mec.pull("z", block=True, timeout=T) == [9] * 4


def test_autopx_leaves_the_terminal_check_for_complete_input_alone(px):
    run(px, "%autopx")
    manager = px.input_transformer_manager
    assert manager.check_complete("for i in range(3):\n")[0] == "incomplete"
    assert manager.check_complete("a = 1\n")[0] == "complete"
    run(px, "%autopx")


# -- live output, interrupts -------------------------------------------------------------------


def test_output_streams_while_the_command_runs(px, mec, tmp_path):
    """The cell can only finish after its first lines were seen here: it waits for a file
    that the test creates once every engine's first line has been shown."""
    gate = tmp_path / "gate"
    code = (
        "%%px\nimport os, time\n"
        "print('first line')\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.01)\n"
        "print('after the gate')\n"
    )
    seen_early = threading.Event()

    with capture_output() as captured:

        def open_gate():
            try:
                wait_for(
                    lambda: all(f"[{i}] first line" in captured.stdout for i in range(4)),
                    T,
                    message="every engine's first line shown while the cell runs",
                )
                seen_early.set()
            finally:
                gate.touch()

        opener = threading.Thread(target=open_gate)
        opener.start()
        result = px.run_cell(code)
        opener.join(T)

    assert seen_early.is_set()
    assert result.success
    lines = captured.stdout.splitlines()
    for i in range(4):  # in order per engine
        assert lines.index(f"[{i}] first line") < lines.index(f"[{i}] after the gate")


def test_partial_lines_and_stderr_keep_their_engine_prefix(px):
    result, captured = run(
        px,
        "%%px --targets 0\nimport sys\nprint('a', end='')\nprint('b')\n"
        "print('oops', file=sys.stderr)\nprint('no newline', end='')",
    )
    assert result.success
    assert captured.stdout.splitlines() == ["[0] ab", "[0] no newline"]
    assert captured.stderr.splitlines() == ["[0] oops"]


def test_ctrl_c_stops_every_engine_and_spares_other_clients(px, mec, cluster4):
    other = cluster4.client()
    holder = {}

    with capture_output() as captured:

        def press_ctrl_c():
            try:
                wait_for(
                    lambda: all(f"[{i}] spinning" in captured.stdout for i in range(4)),
                    T,
                    message="every engine spinning",
                )
                holder["queued"] = other.execute("after = 1", block=False)
                wait_for(
                    lambda: [q["queue"] for _, q in other.queue_status()] == [2] * 4,
                    T,
                    message="a request queued behind the spinning code on every engine",
                )
            finally:  # press it anyway: the cell would otherwise spin until the timeout
                os.kill(os.getpid(), signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        # The cell spins forever unless Ctrl-C reaches the engines: its returning at all
        # (within the test's timeout) is the check, with no wall-clock figure of its own.
        result = px.run_cell("%%px\nprint('spinning', flush=True)\nwhile True: pass")
        presser.join(T)

    assert "queued" in holder
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    # The other client's request, queued behind the interrupted code, then runs.
    assert len(holder["queued"].get_result(timeout=T)) == 4
    assert other.pull("after", timeout=T) == [1] * 4
    with pytest.raises(CompositeError) as info:
        mec.get_result(timeout=T)  # the interrupted command
    assert [e.ename for e in info.value.elist] == ["KeyboardInterrupt"] * 4
    assert "while True: pass" in info.value.elist[0].traceback
    # The engines are free again.
    assert [q["queue"] for _, q in other.queue_status()] == [0] * 4
    assert mec.execute("6 * 7", timeout=T)[0]["display"] == "42"


def test_ctrl_c_during_a_blocking_call_stops_the_engines(mec):
    """Without the magics: Ctrl-C while ``mec.execute`` blocks interrupts the engines."""
    running = set()

    def press_ctrl_c():
        try:
            wait_for(lambda: running == {0, 1, 2, 3}, T, message="every engine spinning")
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        mec.execute(
            "print('spinning')\nwhile True: pass",
            on_output=lambda out: running.add(out.engine),
        )
    presser.join(T)

    with pytest.raises(CompositeError) as info:
        mec.get_result(timeout=T)
    assert [e.ename for e in info.value.elist] == ["KeyboardInterrupt"] * 4
    assert mec.execute("2 + 2", timeout=T)[0]["display"] == "4"


def test_ctrl_c_stops_only_the_callers_own_work(mec, cluster4):
    """Ctrl-C in one client leaves another client's running and queued work alone."""
    other = cluster4.client()
    started = set()
    first = mec.execute(
        "import time\nprint('started')\ntime.sleep(1.5)\nfirst = 1",
        targets=0,
        block=False,
        on_output=lambda out: started.add(out.engine),
    )
    wait_for(lambda: started == {0}, T, message="the first client's code running")
    second = mec.execute("second = 2", targets=0, block=False)
    wait_for(
        lambda: dict(other.queue_status())[0]["queue"] == 2,
        T,
        message="the first client's second request queued",
    )

    def press_ctrl_c():
        try:
            wait_for(
                lambda: dict(other.queue_status())[0]["queue"] == 3,
                T,
                message="the other client's request queued",
            )
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        other.execute("mine = 3", targets=0)
    presser.join(T)

    first.get_result(timeout=T)  # ran to its end: no KeyboardInterrupt raised here
    second.get_result(timeout=T)
    assert mec[0].pull(("first", "second"), timeout=T) == [1, 2]
    with pytest.raises(CompositeError) as info:
        mec.pull("mine", targets=0, timeout=T)  # the Ctrl-C'd request never ran
    assert [e.ename for e in info.value.elist] == ["NameError"]


def test_interrupt_method_stops_running_code_and_clears_queues(mec, cluster4):
    other = cluster4.client()
    running = set()
    spinning = mec.execute(
        "import time\nprint('running')\nwhile True: time.sleep(0.001)",
        block=False,
        on_output=lambda out: running.add(out.engine),
    )
    # Queue the second client's request once the first runs everywhere (requests of two
    # clients are not ordered against each other).
    wait_for(lambda: running == {0, 1, 2, 3}, T, message="the spinning code running")
    queued = other.execute("after = 1", block=False)
    wait_for(
        lambda: [q["queue"] for _, q in other.queue_status()] == [2] * 4,
        T,
        message="the spinning code and a request behind it on every engine",
    )

    assert mec.interrupt(timeout=T) == [None] * 4

    with pytest.raises(CompositeError) as info:
        spinning.get_result(timeout=T)
    assert [e.ename for e in info.value.elist] == ["KeyboardInterrupt"] * 4
    with pytest.raises(CompositeError) as info:
        queued.get_result(timeout=T)
    assert {type(e).__name__ for e in info.value.elist} == {"TaskAborted"}
    assert mec.execute("1 + 1", timeout=T)[0]["display"] == "2"


# -- errors and rich output --------------------------------------------------------------------


def test_remote_errors_show_engine_code_and_exception_without_internals(px):
    result, captured = run(px, "%%px\ndef f(x):\n    return 1 / x\n\nf(0)")

    assert isinstance(result.error_in_exec, CompositeError)
    shown = captured.stdout + captured.stderr
    assert shown.startswith(
        "CompositeError: one or more exceptions from call to method: execute\n"
        "[0:execute]: ZeroDivisionError: division by zero\n"
    )
    assert "[3:execute]: ZeroDivisionError: division by zero" in shown
    assert 'File "<engine 0 In [1]>", line 4, in <module>' in shown
    assert 'File "<engine 0 In [1]>", line 2, in f' in shown
    assert "return 1 / x" in shown
    assert "pxcluster" not in shown.replace("pxcluster._errors", "")
    assert "(all 4 tracebacks: %pxtb; the error object: sys.last_value)" in shown


def test_rich_values_and_displays_come_back(px):
    run(
        px,
        "%%px --targets 0\nclass Table:\n"
        "    def _repr_html_(self):\n        return '<table><tr><td>1</td></tr></table>'\n"
        "    def __repr__(self):\n        return 'Table()'\n",
    )

    result, captured = run(px, "%%px --targets 0\nprint('before')\ndisplay(Table())\nTable()")

    assert result.success
    bundles = displayed(captured)
    assert bundles == [
        {"text/plain": "[0] Table()", "text/html": "<table><tr><td>1</td></tr></table>"},
        {"text/plain": "[0] Out[2]: Table()", "text/html": "<table><tr><td>1</td></tr></table>"},
    ]
    assert captured.stdout.splitlines() == ["[0] before"]


def test_matplotlib_figures_come_back_as_png(px, mec):
    pytest.importorskip("matplotlib")
    result, captured = run(
        px,
        "%%px --targets 1\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3])\nplt.show()\nplt.figure()\nlines = plt.plot([3, 2])",
    )

    assert result.success, captured.stderr
    bundles = displayed(captured)
    assert len(bundles) == 2  # one shown, one left open at the end
    assert all(b["image/png"].startswith("iVBORw0KGgo") for b in bundles)  # PNG, base64
    assert all(b["text/plain"].startswith("[1] <Figure size") for b in bundles)
    assert captured.stderr == ""
    result_list = mec.get_result(targets=1, timeout=T)
    assert len(result_list[0]["display_data"]) == 2
    assert '<img src="data:image/png;base64,' in result_list._repr_html_()


# -- completion, progress ----------------------------------------------------------------------


def test_tab_completion_of_remote_names(px, mec):
    mec.execute("alpha = 1; alphabet = 2; beta = 3", timeout=T)
    mec[2].execute("only_on_two = 4", timeout=T)

    assert {"alpha", "alphabet", "beta", "only_on_two"} <= set(completions(px, "mec['"))
    assert completions(px, "mec['alp") == ["alpha", "alphabet"]
    assert completions(px, "mec[2]['on") == ["only_on_two"]
    assert completions(px, 'mec[2]["on') == ["only_on_two"]
    assert "only_on_two" not in completions(px, "mec[1]['on")


def completions(shell, line):
    """What IPython offers for ``line`` with the cursor at its end (as Tab does)."""
    with provisionalcompleter():
        return [c.text for c in shell.Completer.completions(line, len(line))]


def test_wait_interactive_and_map_progress_show_a_bar(mec, capsys):
    pytest.importorskip("tqdm")
    pending = mec.execute("import time; time.sleep(0.2)", block=False)

    assert pending.wait_interactive(timeout=T) is None  # no stray True under a notebook bar

    assert pending.done()
    assert "4/4" in capsys.readouterr().err
    squares = mec.map(lambda x: x * x, range(100), progress=True, timeout=T)
    assert squares == [x * x for x in range(100)]
    assert "100/100" in capsys.readouterr().err
    assert mec.map(lambda x: x, range(3), progress=True, timeout=T) == [0, 1, 2]
    with pytest.raises(ValueError, match="blocking"):
        mec.map(lambda x: x, range(3), progress=True, block=False)

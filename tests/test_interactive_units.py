"""Pure parts of interactive use: option parsing, HTML and text rendering, mime bundles,
progress accounting and the start-up report. No cluster needed."""

import base64
import subprocess
import sys

import pytest

from pxcluster._errors import CompositeError, EngineDied, RemoteError
from pxcluster.cli.cluster import RegistrationReport
from pxcluster.client._results import PendingResult, ResultList
from pxcluster.client._streams import output_of
from pxcluster.engine._display import DisplayCapture, display, mime_bundle, rich_bundle
from pxcluster.magics._options import PxOptions, parse_px, parse_result, parse_targets
from pxcluster.wire import Message, MsgType, Status

# -- %px options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("all", "all"),
        ("3", 3),
        ("0,2", [0, 2]),
        ("1:3", [1, 2]),
        ("[0, 2]", [0, 2]),
        (":2", [0, 1]),
        ("5,", [5]),
    ],
)
def test_targets_forms(text, spec):
    assert parse_targets(text) == spec


@pytest.mark.parametrize("text", ["nine", "", "1:x", "[]"])
def test_bad_targets_say_what_is_accepted(text):
    with pytest.raises(ValueError, match="give 'all', an engine id"):
        parse_targets(text)


def test_px_options_come_first_and_the_code_is_kept_as_written():
    assert parse_px("a = 5") == PxOptions("a = 5")
    assert parse_px("--targets 0,2 --noblock print('--block')") == PxOptions(
        "print('--block')", targets=[0, 2], block=False
    )
    assert parse_px("-t=1 --local --block x") == PxOptions("x", targets=1, block=True, local=True)
    assert parse_px("--x") == PxOptions("--x")  # Python, not an option
    assert parse_px("--targets 1", "a = 1\nb = 2\n") == PxOptions("a = 1\nb = 2\n", targets=1)


def test_px_usage_errors():
    with pytest.raises(ValueError, match="no code"):
        parse_px("--block")
    with pytest.raises(ValueError, match="options only"):
        parse_px("a = 1", "b = 2")
    with pytest.raises(ValueError, match="only --targets"):
        parse_result("--local")
    assert parse_result("") is None
    assert parse_result("--targets all") == "all"


# -- rendering -------------------------------------------------------------------------------


def entry(engine, code, stdout="", display=None, stderr="", **extra):
    return {
        "id": engine,
        "number": 1,
        "input": {"raw": code, "translated": code},
        "stdout": stdout,
        "stderr": stderr,
        "display": display,
        **extra,
    }


def test_result_list_html_is_a_compact_escaped_table():
    html = ResultList(
        [entry(0, "print('<b>')", "<b>\n"), entry(1, "x", display="3", stderr="warn\n")]
    )._repr_html_()
    assert html.startswith('<table class="pxcluster-results">')
    assert html.count("<tr>") == 3  # a header and one row per engine
    assert "&lt;b&gt;" in html
    assert "<b>" not in html
    assert "warn" in html
    assert ">Err<" in html
    assert ResultList()._repr_html_() is None


def test_result_list_shows_rich_outputs_inline_and_their_text_in_the_layout():
    png = base64.b64encode(b"\x89PNG").decode()
    results = ResultList(
        [
            entry(
                0,
                "show()",
                "hi\n",
                display="T()",
                display_data=[{"text/plain": "<Figure>", "image/png": png}],
                execute_result={"text/plain": "T()", "text/html": "<i>t</i>"},
            )
        ]
    )
    assert repr(results) == (
        "<Results List>\n[0] In [1]: show()\n[0] Out[1]: hi\n            <Figure>\n            T()"
    )
    html = results._repr_html_()
    assert f'<img src="data:image/png;base64,{png}"/>' in html
    assert "<i>t</i>" in html


def remote(engine, tb="Traceback (most recent call last):\n  1/0\nZeroDivisionError: x\n"):
    return RemoteError(engine, "ZeroDivisionError", "x", tb)


def test_composite_error_renders_the_summary_and_the_first_remote_traceback():
    lines = CompositeError(
        "execute", [remote(0), remote(2), EngineDied("gone", 3)]
    )._render_traceback_()
    assert lines == [
        "CompositeError: one or more exceptions from call to method: execute",
        "[0:execute]: ZeroDivisionError: x",
        "[2:execute]: ZeroDivisionError: x",
        "[3:execute]: EngineDied: gone",
        "",
        "[0:execute]: ",
        "Traceback (most recent call last):",
        "  1/0",
        "ZeroDivisionError: x",
        "",
        "(print_tracebacks() on this error shows all 3)",
    ]
    assert remote(1)._render_traceback_()[0] == "[engine 1] ZeroDivisionError: x"


# -- engine-side mime bundles ----------------------------------------------------------------


class Rich:
    def _repr_html_(self):
        return "<b>rich</b>"

    def _repr_png_(self):
        return b"\x89PNG"

    def _repr_markdown_(self):
        raise RuntimeError("a broken repr is left out, as IPython does")

    def __repr__(self):
        return "Rich()"


class Bundled:
    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": "<i>b</i>", "application/x-odd": object()}, {}


def test_mime_bundles_of_values():
    assert mime_bundle(Rich()) == {
        "text/plain": "Rich()",
        "text/html": "<b>rich</b>",
        "image/png": base64.b64encode(b"\x89PNG").decode(),
    }
    assert mime_bundle(Bundled(), "B") == {"text/plain": "B", "text/html": "<i>b</i>"}
    assert mime_bundle(Rich, "Rich") == {"text/plain": "Rich"}  # a class, not an instance
    assert rich_bundle(5, "5") is None
    assert rich_bundle(Rich(), "Rich()")["text/html"] == "<b>rich</b>"


def test_display_collects_into_the_running_request_and_streams(capsys):
    sent = []
    with DisplayCapture(lambda name, text: sent.append((name, text))) as capture:
        display(Rich(), {"text/plain": "raw"}, raw=True)
    assert [b["text/plain"] for b in capture.bundles] == ["Rich()", "raw"]
    assert [name for name, _ in sent] == ["display", "display"]
    stream = Message(MsgType.STREAM, "m1", {"name": sent[0][0], "text": sent[0][1]}, engine=2)
    out = output_of(stream)
    assert (out.engine, out.name, out.text, out.data["text/html"]) == (
        2,
        "display",
        "Rich()",
        "<b>rich</b>",
    )
    display(5)  # outside a request: printed
    assert capsys.readouterr().out == "5\n"


# -- progress --------------------------------------------------------------------------------


def reply(parent, engine):
    return Message(
        MsgType.REPLY, f"r-{parent}-{engine}", {}, parent=parent, engine=engine, status=Status.OK
    )


def test_progress_counts_replies_by_their_weight():
    pending = PendingResult("map", [("a", 0), ("b", 0), ("c", 1)], len, weights=[5, 3, 2])
    assert pending.progress() == (0, 10)
    pending.add_reply(reply("b", 0))
    assert pending.progress() == (3, 10)
    pending.add_reply(reply("a", 0))
    pending.add_reply(reply("c", 1))
    assert pending.progress() == (10, 10)
    assert pending.result() == 3


def test_interrupt_hook_runs_only_while_pending():
    calls = []
    pending = PendingResult("execute", [("a", 0)], len, on_interrupt=lambda: calls.append(1))
    pending.interrupt()
    pending.add_reply(reply("a", 0))
    pending.interrupt()
    assert calls == [1]


def test_start_report_shows_engines_registering_only_when_slow(capsys):
    pytest.importorskip("tqdm")
    quick = RegistrationReport(delay=60.0)
    quick(1, 4)
    quick.close()
    assert capsys.readouterr().err == ""
    slow = RegistrationReport(delay=0.0)
    slow(1, 4)
    slow(4, 4)
    slow.close()
    err = capsys.readouterr().err
    assert "engines registered" in err
    assert "4/4" in err


def test_importing_pxcluster_and_its_client_never_imports_ipython():
    code = (
        "import sys, pxcluster, pxcluster.client\n"
        "from pxcluster import client\n"
        "assert 'IPython' not in sys.modules, 'IPython imported'\n"
        "assert 'pxcluster.magics' not in sys.modules\n"
        "assert 'tqdm' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr

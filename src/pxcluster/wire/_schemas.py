"""Wire layer: what each message type's ``content`` holds, declared once, checked on receipt.

Every message type has one ``TypedDict`` below. Senders build their content as that type
(mypy checks them); ``decode`` checks every received message against it before any
handler sees it, so a handler can trust the types of the fields it reads. The check is
compiled once from the annotations into exact ``type() in`` tests (a few hundred
nanoseconds a message: no pydantic, no ``isinstance`` walks over big values).

Rules the check applies:

* a field declared ``Required[...]`` must be there; every other field is optional;
* a field that is there must have one of its declared types *exactly*: ``bool`` is not an
  ``int``, and ``float`` also accepts ``int`` (msgpack keeps ``3.0`` and ``3`` apart);
* ``list[X]`` checks each element's type; ``dict[...]`` and ``Any`` check nothing inside;
* fields that are not declared are allowed and ignored, so a newer peer may send a field
  an older one does not know.

**Adding a field** is one line: add ``name: type`` to the message type's ``TypedDict``
(``NotRequired`` is the default here: every class is ``total=False``). For instance an MPI
rank in REGISTER is ``rank: int``; the launcher's handle is ``launch: dict[str, Any]``.
**A new message type**: add it to ``MsgType`` and give it a ``TypedDict`` in ``CONTENT``;
a type with no entry there is refused by receivers.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

if sys.version_info >= (3, 11):
    from typing import NotRequired, Required, TypedDict
else:  # 3.10's typing.TypedDict knows no Required/NotRequired
    from typing_extensions import NotRequired, Required, TypedDict

from pxcluster.wire._types import MsgType

# -- the catalogue -------------------------------------------------------------------------


class NoContent(TypedDict, total=False):
    """Requests that carry nothing: CONNECT, RESET, KEYS, SHUTDOWN, QUEUE_STATUS, TASK_STATUS."""


class RegisterContent(TypedDict, total=False):
    """REGISTER (engine → controller): who the engine is."""

    hostname: str
    pid: int
    host: str  # host key: hostname and boot id, for shared memory
    id: int  # the id it had, asked back after a controller restart
    rejoin: bool  # False: if declared dead, do not register it anew (it will exit)
    launch: dict[str, Any]  # its launcher's handle (profile.launch_info: job id, index...)
    direct: str  # where clients on its host send requests directly (client/_direct.py)
    direct_key: str  # the key (hex) those requests and their replies are signed with


class NotifyContent(TypedDict, total=False):
    """NOTIFY (controller → client, or → engine with ``event`` "register")."""

    event: Required[str]  # "registered", "died", "stopped"; "register" to an engine
    reason: str  # with "register": "declared dead" (drop what you hold, join as new)
    engine: int
    host: str
    version: int
    direct: str  # with "registered": the engine's direct address and key (as in REGISTER)
    direct_key: str


class ExecuteContent(TypedDict, total=False):
    """EXECUTE: code to run in the namespace."""

    code: Required[str]
    stream: bool  # send STREAM messages as the code writes


class PushContent(TypedDict, total=False):
    """PUSH: names and the frame counts of their pickled values."""

    names: Required[list[str]]
    counts: Required[list[int]]
    shm: list[int]  # frames that are shared-memory segment names
    stream: bool


class PullContent(TypedDict, total=False):
    """PULL: names whose values come back."""

    names: Required[list[str]]
    gather: bool  # answer a big array's layout first (a gather's first round)
    into: dict[str, Any]  # write the array into the client's segment (its second round)
    shm_ok: bool  # big buffers may come back as segments
    stream: bool


class ApplyContent(TypedDict, total=False):
    """APPLY: call a function (pickled, or ``source`` to eval) on pickled arguments."""

    mode: str  # "apply" or "map"
    counts: Required[list[int]]
    source: str
    stream: bool


class TaskContent(TypedDict, total=False):
    """TASK: a load-balanced task's spec (see ``engine/_tasks.py``)."""

    kind: Required[str]  # "map" or "string"
    counts: Required[list[int]]
    depend: bool
    clear_before: bool
    clear_after: bool
    chunk: bool
    code: str
    push: list[str]
    pull: list[str]
    recovery: dict[str, Any]  # a nested spec, checked by the engine when it runs it
    timeout: float | None
    retries: int
    after: list[str]
    stream: bool


class BatchContent(TypedDict, total=False):
    """BATCH: TASK or REPLY messages carried together (see ``wire/_batch.py``)."""

    entries: Required[list[bytes]]  # each entry's own encoded header (its buffers: in "b")


class ControlContent(TypedDict, total=False):
    """CLEAR_QUEUE and INTERRUPT: which requests they act on."""

    session: str  # only that client session's requests
    request: str  # INTERRUPT: only this request
    withdraw: bool  # INTERRUPT: take it back if it has not started, never interrupt


class TaskQueryContent(TypedDict, total=False):
    """TASK_RESULT and TASK_ABORT: a task id."""

    id: Required[str]
    block: bool  # TASK_RESULT: answer when it finishes


class TaskClearContent(TypedDict, total=False):
    """TASK_CLEAR: forget a session's finished results."""

    session: str


class MonitorContent(TypedDict, total=False):
    """MONITOR: the sequence number of the newest activity event the monitor already has."""

    since: int


class LauncherEndedContent(TypedDict, total=False):
    """LAUNCHER_ENDED (client → controller): engines whose launcher ended them because the
    controller could not (MONITOR's ``signal_wanted``; the cluster's keeper does it)."""

    engines: Required[list[int]]
    how: str


class StreamContent(TypedDict, total=False):
    """STREAM (engine → client): output written while a request runs."""

    name: Required[str]  # "stdout", "stderr" or "display"
    text: Required[str]


class DirectContent(TypedDict, total=False):
    """DIRECT (engine → controller): a request sent to the engine directly, by a client on
    its host; ``parent`` is the request's id. The controller keeps it in the engine's queue
    from "queued" to "done" (``kind``: the request's MsgType), as if it had forwarded it."""

    state: Required[str]  # "queued", "done", or "ran" (a bulk report, see ``ran``)
    kind: int
    # "ran": requests answered before they were announced, each [id, kind, status, started,
    # completed, ename, evalue, traceback]
    ran: list[list[Any]]
    # with "done": as in its REPLY, for monitors (what failed, how long it ran)
    ename: str
    evalue: str
    traceback: str
    started: float
    completed: float


class ReplyContent(TypedDict, total=False):
    """REPLY: the fields any reply may carry (each request reads the ones it expects)."""

    # failures
    error: str
    kind: str
    ename: str
    evalue: str
    traceback: str
    timed_out: float | None
    # execute and tasks
    n: int
    stdout: str
    stderr: str
    display: str | None
    display_data: list[Any]
    execute_result: dict[str, Any] | None
    started: float
    completed: float
    submitted: float
    # values
    counts: list[int]
    names: list[str]
    keys: list[str]
    shm: list[int]
    layout: dict[str, Any] | None
    written: int
    # control, registry and tasks
    id: int | str
    engines: list[int]
    hosts: list[list[Any]]
    version: int
    queues: list[list[int]]
    hb_ping_port: int
    hb_pong_port: int
    heartbeat_timeout: float  # REGISTER's reply: engines judge their own freezes by it
    cleared: int
    interrupted: str | None
    withdrawn: bool
    state: str
    dropped: bool
    not_stored: bool  # a task whose result the record store could not keep
    store_error: str
    # MONITOR (see controller/_activity.py)
    engine_rows: list[list[Any]]  # [id, hostname, pid, queue length, seconds since heard of]
    clients: list[list[Any]]  # [session, seconds since its latest request]
    tasks: dict[str, Any]
    store: dict[str, Any]
    seq: int
    finished: int
    errors_total: int
    events: list[list[Any]]
    errors: list[dict[str, Any]]
    gone: list[dict[str, Any]]
    signal_wanted: list[list[int]]  # [engine id, signum]: a launcher must signal it


#: The content type of each message type. Both directions of a type share one declaration.
CONTENT: dict[MsgType, type] = {
    MsgType.CONNECT: NoContent,
    MsgType.REGISTER: RegisterContent,
    MsgType.NOTIFY: NotifyContent,
    MsgType.EXECUTE: ExecuteContent,
    MsgType.PUSH: PushContent,
    MsgType.PULL: PullContent,
    MsgType.APPLY: ApplyContent,
    MsgType.RESET: NoContent,
    MsgType.KEYS: NoContent,
    MsgType.SHUTDOWN: NoContent,
    MsgType.TASK: TaskContent,
    MsgType.BATCH: BatchContent,
    MsgType.QUEUE_STATUS: NoContent,
    MsgType.CLEAR_QUEUE: ControlContent,
    MsgType.INTERRUPT: ControlContent,
    MsgType.TASK_RESULT: TaskQueryContent,
    MsgType.TASK_ABORT: TaskQueryContent,
    MsgType.TASK_STATUS: NoContent,
    MsgType.TASK_CLEAR: TaskClearContent,
    MsgType.MONITOR: MonitorContent,
    MsgType.LAUNCHER_ENDED: LauncherEndedContent,
    MsgType.STREAM: StreamContent,
    MsgType.DIRECT: DirectContent,
    MsgType.REPLY: ReplyContent,
}

# -- the compiled check --------------------------------------------------------------------

#: A field's check: the exact types its value may have, and for a list those of its items
#: (None: anything).
_Field = tuple[frozenset[type] | None, frozenset[type] | None]


def _types_of(annotation: Any) -> _Field:
    """Exact types an annotation allows, and for ``list[X]`` the types of X."""
    origin = typing.get_origin(annotation)
    if origin in (Required, NotRequired):
        return _types_of(typing.get_args(annotation)[0])
    if annotation is Any:
        return None, None
    if origin in (types.UnionType, typing.Union):
        allowed: set[type] = set()
        items: set[type] | None = None
        for arm in typing.get_args(annotation):
            arm_types, arm_items = _types_of(arm)
            if arm_types is None:
                return None, None
            allowed |= arm_types
            if arm_items is not None:
                items = (items or set()) | arm_items
        return frozenset(allowed), None if items is None else frozenset(items)
    if origin is list:
        (item,) = typing.get_args(annotation)
        item_types, _ = _types_of(item)
        return frozenset({list}), item_types
    if origin is dict:
        return frozenset({dict}), None
    if annotation is None or annotation is type(None):
        return frozenset({type(None)}), None
    if annotation is float:
        return frozenset({float, int}), None
    if isinstance(annotation, type):
        return frozenset({annotation}), None
    raise TypeError(f"wire schemas cannot check {annotation!r}")  # a catalogue bug


def _compile(schema: type) -> tuple[dict[str, _Field], frozenset[str]]:
    hints = typing.get_type_hints(schema, include_extras=True)
    fields = {name: _types_of(hint) for name, hint in hints.items()}
    # Read from the annotations, not ``__required_keys__``: with postponed annotations
    # the class cannot see ``Required[...]`` when it is made (before Python 3.14).
    required = {name for name, hint in hints.items() if typing.get_origin(hint) is Required}
    return fields, frozenset(required)


_COMPILED: dict[MsgType, tuple[dict[str, _Field], frozenset[str]]] = {
    kind: _compile(schema) for kind, schema in CONTENT.items()
}


def content_problem(kind: MsgType, content: Mapping[str, Any]) -> str | None:
    """What is wrong with ``content`` for a message of type ``kind``, or None if it fits."""
    compiled = _COMPILED.get(kind)
    if compiled is None:
        return f"{kind.name} has no declared content"
    fields, required = compiled
    if required and not required <= content.keys():
        missing = sorted(required - content.keys())
        return f"{kind.name} content lacks {', '.join(missing)}"
    for key, value in content.items():
        field = fields.get(key)
        if field is None:
            continue  # undeclared: ignored (a newer peer's field)
        allowed, items = field
        if allowed is None:
            continue
        if type(value) not in allowed:
            return f"{kind.name} field {key!r} is a {type(value).__name__}"
        if items is not None and type(value) is list:
            for item in value:
                if type(item) not in items:
                    return f"{kind.name} field {key!r} holds a {type(item).__name__}"
    return None

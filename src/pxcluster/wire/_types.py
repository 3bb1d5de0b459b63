"""Wire layer: the catalogue of message types, one enum with one spelling each.

Who sends what (C = client, K = controller, E = engine):

==================  =========  ==========================================================
type                direction  meaning
==================  =========  ==========================================================
CONNECT             C → K      hello; the reply lists the engines and subscribes the client
                               to engine notifications
REGISTER            E → K      an engine asks for an id; the reply carries it
NOTIFY              K → C      an engine registered or died
EXECUTE             C → K → E  run code; reply carries stdout/stderr and the display value
PUSH / PULL         C → K → E  set / get names in the engine's namespace
APPLY               C → K → E  call a pickled function on pickled arguments (map, tasks)
RESET / KEYS        C → K → E  clear the namespace / list its names
SHUTDOWN            C → K → E  stop engines (``kill``) or, with no targets, the controller
TASK                C → K → E  a load-balanced task; the controller picks the engine
BATCH               C → K → E  several TASKs (or, back, several REPLYs) in one message,
                    E → K → C  signed once, each entry keeping its own header (``_batch.py``)
TASK_RESULT         C → K      results of tasks by id (waits for unfinished ones if asked)
TASK_ABORT          C → K      drop a queued task, or interrupt it where it runs
TASK_STATUS         C → K      counts of queued, running and finished tasks
TASK_CLEAR          C → K      forget a session's finished task results
QUEUE_STATUS        C → K      per-engine count of queued requests
MONITOR             C → K      a snapshot for monitors: engines, queues, clients, task
                               counts, store size, recent requests and errors
CLEAR_QUEUE         C → K → E  drop requests that have not started yet
INTERRUPT           C → K → E  raise KeyboardInterrupt in the running request
STREAM              E → K → C  stdout/stderr written while a request runs
DIRECT              E → K      a request a client on the engine's host sent it directly:
                               queued (the controller counts it as sent) or done (answered)
REPLY               K/E → C    the result of any request above
==================  =========  ==========================================================
"""

from __future__ import annotations

import enum


class MsgType(enum.IntEnum):
    """Every message type on the wire; the integer is what travels."""

    CONNECT = 1
    REGISTER = 2
    NOTIFY = 3
    EXECUTE = 10
    PUSH = 11
    PULL = 12
    APPLY = 13
    RESET = 14
    KEYS = 15
    SHUTDOWN = 16
    TASK = 17
    BATCH = 18
    QUEUE_STATUS = 20
    CLEAR_QUEUE = 21
    INTERRUPT = 22
    TASK_RESULT = 23
    TASK_ABORT = 24
    TASK_STATUS = 25
    TASK_CLEAR = 26
    MONITOR = 27
    LAUNCHER_ENDED = 28  # a keeper ended engines (at MONITOR's signal_wanted): settle them
    STREAM = 30
    DIRECT = 31
    REPLY = 40


#: Requests an engine runs one at a time, in arrival order, in its main thread.
QUEUED_REQUESTS = frozenset(
    {
        MsgType.EXECUTE,
        MsgType.PUSH,
        MsgType.PULL,
        MsgType.APPLY,
        MsgType.RESET,
        MsgType.KEYS,
        MsgType.TASK,
    }
)
#: Requests an engine's I/O thread handles at once, even while user code runs.
CONTROL_REQUESTS = frozenset({MsgType.CLEAR_QUEUE, MsgType.INTERRUPT, MsgType.SHUTDOWN})


class Status(enum.IntEnum):
    """Outcome carried by a REPLY."""

    OK = 0
    ERROR = 1  # user code raised; buffers hold the pickled error
    ENGINE_ERROR = 2  # the engine died, is unknown, or refused the request
    ABORTED = 3  # dropped from a queue before it ran, or interrupted by an abort
    REFUSED = 4  # a task's ``depend`` predicate said no on this engine

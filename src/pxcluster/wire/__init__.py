"""Wire layer (bottom, sans-IO): message types, their content schemas, framing and signing.

Never touches a socket. Each message type's content is declared once, as a ``TypedDict`` in
``_schemas.py``, and every decoded message is checked against it. To add a field to a
message (an MPI rank in REGISTER, say), add one line ``rank: int`` to that type's
``TypedDict``; see ``_schemas.py`` for the rules.
"""

from pxcluster.wire._batch import BATCHABLE, MAX_ENTRIES, batchable, pack_batch, unbatch
from pxcluster.wire._droplog import DropLog
from pxcluster.wire._framing import (
    DELIMITER,
    Message,
    check_digests,
    decode,
    encode,
    encode_raw,
    pack_header,
    reply_identity,
    sender_identity,
    split_routing,
    unpack_header,
)
from pxcluster.wire._relay import (
    FAN,
    NOTE,
    NoteKind,
    fan_frames,
    fan_targets,
    pack_note,
    relayed_identity,
    split_relayed,
    unpack_note,
)
from pxcluster.wire._schemas import (
    CONTENT,
    ApplyContent,
    BatchContent,
    ControlContent,
    ExecuteContent,
    NoContent,
    NotifyContent,
    PullContent,
    PushContent,
    RegisterContent,
    ReplyContent,
    StreamContent,
    TaskClearContent,
    TaskContent,
    TaskQueryContent,
    content_problem,
)
from pxcluster.wire._signing import REPLAY_WINDOW, RecentIds, ReplayGuard, Signer, new_key
from pxcluster.wire._types import CONTROL_REQUESTS, QUEUED_REQUESTS, MsgType, Status

__all__ = [
    "BATCHABLE",
    "CONTENT",
    "CONTROL_REQUESTS",
    "DELIMITER",
    "FAN",
    "MAX_ENTRIES",
    "NOTE",
    "QUEUED_REQUESTS",
    "REPLAY_WINDOW",
    "ApplyContent",
    "BatchContent",
    "ControlContent",
    "DropLog",
    "ExecuteContent",
    "Message",
    "MsgType",
    "NoContent",
    "NoteKind",
    "NotifyContent",
    "PullContent",
    "PushContent",
    "RecentIds",
    "RegisterContent",
    "ReplayGuard",
    "ReplyContent",
    "Signer",
    "Status",
    "StreamContent",
    "TaskClearContent",
    "TaskContent",
    "TaskQueryContent",
    "batchable",
    "check_digests",
    "content_problem",
    "decode",
    "encode",
    "encode_raw",
    "fan_frames",
    "fan_targets",
    "new_key",
    "pack_batch",
    "pack_header",
    "pack_note",
    "relayed_identity",
    "reply_identity",
    "sender_identity",
    "split_relayed",
    "split_routing",
    "unbatch",
    "unpack_header",
    "unpack_note",
]

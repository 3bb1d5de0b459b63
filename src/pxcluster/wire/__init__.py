"""Wire layer (bottom, sans-IO): message types, framing and signing. Never touches a socket."""

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
from pxcluster.wire._signing import RecentIds, ReplayGuard, Signer, new_key
from pxcluster.wire._types import CONTROL_REQUESTS, QUEUED_REQUESTS, MsgType, Status

__all__ = [
    "CONTROL_REQUESTS",
    "DELIMITER",
    "QUEUED_REQUESTS",
    "Message",
    "MsgType",
    "RecentIds",
    "ReplayGuard",
    "Signer",
    "Status",
    "check_digests",
    "decode",
    "encode",
    "encode_raw",
    "new_key",
    "pack_header",
    "reply_identity",
    "sender_identity",
    "split_routing",
    "unpack_header",
]

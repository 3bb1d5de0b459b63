"""Bottom layer: the type of a frame's bytes, shared by every layer that handles frames."""

#: Anything exposing the buffer protocol that pxcluster sends or receives as a frame.
Buffer = bytes | memoryview | bytearray

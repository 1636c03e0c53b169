"""A websocket client connection that hands each data message to a
callback as soon as its frame is read: no queue, no task switch, no
decoding to text. At the whole market's peak, 15,000 messages a second
arrive in reads of hundreds of frames each, and going through websockets'
frame parser, message queue and ``recv`` costs more than all the exporter
does with a message.

Only what the stream servers send in the normal course is read here:
whole (FIN) text or binary frames, unmasked, without reserved bits, no
larger than the connection's ``max_size``. Ping and pong frames are
handed to websockets whole, one at a time, so that it answers pings and
keeps its keepalive as ever. Anything else (a close frame, a fragmented
message, a reserved bit or opcode, a masked or oversized frame) hands
that frame and everything after it to websockets for good, which then
does what it always does (closes, or fails the connection). The fast
reading starts only at a frame boundary with nothing queued in
websockets, so messages keep their order.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State
from websockets.streams import StreamReader

_FIN, _RESERVED, _OPCODE, _MASKED, _LENGTH = 0x80, 0x70, 0x0F, 0x80, 0x7F
_TEXT, _BINARY, _PING, _PONG = 0x1, 0x2, 0x9, 0xA
_AT_A_FRAME_BOUNDARY = StreamReader.at_eof.__code__  # where websockets' parser waits between frames


class DirectConnection(ClientConnection):
    """A ``ClientConnection`` whose data messages go to ``on_message``
    (as bytes) as they are read, once it is set; until then, and after
    anything but data, ping and pong frames, messages go through
    websockets' queue to ``recv`` as usual."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.on_message: Optional[Callable[[bytes], None]] = None
        self._unread = bytearray()  # the start of a frame not yet whole
        self._direct = False  # reading frames here
        self._handed_over = False  # websockets reads everything from now on

    def data_received(self, data: bytes) -> None:
        if not self._direct:
            if self._handed_over or self.on_message is None or not self._at_a_frame_boundary():
                super().data_received(data)
                return
            self._direct = True
        unread = self._unread
        unread += data
        read = self._read_frames(unread)
        del unread[:read]

    def _read_frames(self, buffer: bytearray) -> int:
        """Reads the whole frames at the start of ``buffer``; returns how
        many bytes they took."""
        on_message, max_size, size = self.on_message, self.protocol.max_message_size, len(buffer)
        assert on_message is not None
        start = 0
        while size - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            length, header = second & _LENGTH, 2
            if length == 126:
                if size - start < 4:
                    break
                length, header = int.from_bytes(buffer[start + 2 : start + 4], "big"), 4
            elif length == 127:
                if size - start < 10:
                    break
                length, header = int.from_bytes(buffer[start + 2 : start + 10], "big"), 10
            opcode = first & _OPCODE
            simple = not second & _MASKED and not first & _RESERVED and (max_size is None or length <= max_size)
            if not simple or not (opcode in (_TEXT, _BINARY) and first & _FIN or opcode in (_PING, _PONG)):
                self._hand_over(buffer, start)
                return size
            end = start + header + length
            if end > size:
                break
            if opcode in (_TEXT, _BINARY):
                on_message(bytes(buffer[start + header : end]))  # pylint: disable=not-callable  # set: asserted above
            else:
                super().data_received(bytes(buffer[start:end]))  # websockets answers a ping, or takes the pong
                if self.protocol.state is not State.OPEN:  # it found the frame wrong (a long ping, say)
                    self._hand_over(buffer, end)
                    return size
            start = end
        return start

    def _hand_over(self, buffer: bytearray, start: int) -> None:
        """Hands the frame at ``start`` and all that follows to websockets, for good."""
        self._direct, self._handed_over = False, True
        super().data_received(bytes(buffer[start:]))

    def _at_a_frame_boundary(self) -> bool:
        """Whether websockets' parser is open, between two frames, with
        nothing read ahead and no message queued for ``recv``."""
        protocol = self.protocol
        if protocol.state is not State.OPEN or protocol.current_size is not None:
            return False  # closing, or in the middle of a fragmented message
        if protocol.reader.buffer or len(self.recv_messages.frames):
            return False
        waiting = protocol.parser
        while waiting.gi_yieldfrom is not None:
            waiting = waiting.gi_yieldfrom
        return waiting.gi_code is _AT_A_FRAME_BOUNDARY

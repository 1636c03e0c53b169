"""The direct frame reader: data messages go to ``on_message`` in order,
however the bytes are cut, and everything else is websockets' as before
(pings answered, a close, fragments, and frames websockets refuses).
Against a real socket server that writes exactly the bytes a test gives."""

import asyncio
import base64
import hashlib
import os

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from binance_exporter.binance.direct_frames import DirectConnection

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 10.0  # a deadline for anything awaited; nothing waits on it in a passing run


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True, reserved: int = 0, mask: bool = False) -> bytes:
    """A websocket frame as a server writes it (or masked, as only a client may)."""
    length = len(payload)
    head = bytes([(0x80 if fin else 0) | reserved | opcode])
    flag = 0x80 if mask else 0
    if length < 126:
        head += bytes([flag | length])
    elif length < 2**16:
        head += bytes([flag | 126]) + length.to_bytes(2, "big")
    else:
        head += bytes([flag | 127]) + length.to_bytes(8, "big")
    if mask:
        key = b"\x01\x02\x03\x04"
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def unmasked(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each whole frame a client wrote."""
    frames = []
    while len(data) >= 6:
        length, start = data[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(data[2:4], "big"), 4
        key, start = data[start : start + 4], start + 4
        if len(data) < start + length:
            break
        frames.append((data[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(data[start : start + length]))))
        data = data[start + length :]
    return frames


CLOSE = object()  # in a RawServer's writes: the server closes the connection there


class RawServer:
    """A websocket server that completes the handshake, then writes each
    of ``writes`` (bytes, an ``asyncio.Event`` to wait for first, or
    ``CLOSE``); it keeps what the client sends in ``received`` and answers
    a close frame with one."""

    def __init__(self, writes, with_answer=b""):
        self.writes = writes
        self.with_answer = with_answer  # written with the handshake's answer, in one write
        self.received = b""
        self.got = asyncio.Event()  # set at each read from the client
        self.server = None

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/stream"

    async def __aexit__(self, *_):
        self.server.close()

    async def _serve(self, reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + self.with_answer
        )
        reading = asyncio.create_task(self._read(reader, writer))
        for write in self.writes:
            if write is CLOSE:
                writer.close()
                return
            if isinstance(write, asyncio.Event):
                await asyncio.wait_for(write.wait(), TIMEOUT)
            else:
                writer.write(write)
                await writer.drain()
        await asyncio.wait_for(reading, TIMEOUT)
        writer.close()

    async def pong_received(self, payload):
        """Returns once the client has answered the ping of ``payload``."""
        while (0xA, payload) not in unmasked(self.received):
            self.got.clear()
            await self.got.wait()

    async def _read(self, reader, writer):
        while data := await reader.read(65536):
            self.received += data
            self.got.set()
            if any(opcode == 0x8 for opcode, _ in unmasked(self.received)) and not writer.is_closing():
                writer.write(frame(b"", opcode=0x8))
                writer.close()


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))


async def read_all(url, opened, expected, max_size=2**20):
    """Connects, hands messages to on_message and sets ``opened``, and
    gathers what comes directly and through ``recv`` until ``expected``
    messages came or the connection closed; returns (direct, queued, the close)."""
    direct, queued, closed = [], [], None
    async with connect(url, create_connection=DirectConnection, max_size=max_size, ping_interval=None) as ws:
        ws.on_message = direct.append
        opened.set()
        try:
            while len(direct) + len(queued) < expected:
                queued.append(await ws.recv(decode=False))
        except (ConnectionClosedOK, ConnectionClosedError) as exc:
            closed = exc
    return direct, queued, closed


MESSAGES = [b'{"n":%d,"pad":"%s"}' % (n, b"x" * size) for n, size in enumerate((0, 5, 130, 300, 70000, 1))]


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 125, 4096, None])
def test_data_messages_come_whole_and_in_order_however_the_bytes_are_cut(cut):
    opened = asyncio.Event()
    stream = b"".join(frame(m, opcode=0x2 if n % 2 else 0x1) for n, m in enumerate(MESSAGES))
    pieces = [stream] if cut is None else [stream[i : i + cut] for i in range(0, len(stream), cut)]

    async def scenario():
        server = RawServer([opened, *pieces, frame(b"\x03\xe8", opcode=0x8)])
        async with server as url:
            direct, queued, closed = [], [], None
            async with connect(url, create_connection=DirectConnection, ping_interval=None) as ws:
                ws.on_message = direct.append
                opened.set()
                try:
                    queued.append(await ws.recv())
                except ConnectionClosedOK as exc:
                    closed = exc
        return direct, queued, closed

    direct, queued, closed = run(scenario())
    assert direct == MESSAGES and not queued
    assert closed.rcvd.code == 1000  # the close frame went to websockets, which closed cleanly


def test_messages_before_on_message_is_set_or_still_queued_keep_their_order():
    ready, first_read = asyncio.Event(), asyncio.Event()

    async def scenario():
        # The first two come with the handshake's answer, before on_message
        # is set: websockets queues them. The third comes while they are still
        # queued (the pong to the ping after it says it was read): it must
        # queue behind them. The fourth comes once they are read.
        writes = [ready, frame(b"3") + frame(b"sync", 0x9), first_read, frame(b"4"), frame(b"", 0x8)]
        server = RawServer(writes, with_answer=frame(b"1") + frame(b"2"))
        async with server as url:
            direct, queued = [], []
            async with connect(url, create_connection=DirectConnection, ping_interval=None) as ws:
                ws.on_message = direct.append
                ready.set()
                await server.pong_received(b"sync")
                while len(queued) < 3:
                    queued.append(await ws.recv(decode=False))
                first_read.set()
                with pytest.raises(ConnectionClosedOK):
                    await ws.recv()
        return direct, queued

    direct, queued = run(scenario())
    assert queued == [b"1", b"2", b"3"] and direct == [b"4"]


def test_a_ping_is_answered_with_its_payload_and_a_pong_is_taken_between_messages():
    async def scenario():
        opened = asyncio.Event()
        odd = frame(b"1") + frame(b"hello", opcode=0x9) + frame(b"2") + frame(b"", opcode=0xA) + frame(b"3")
        server = RawServer([opened, odd])
        async with server as url:
            direct = []
            async with connect(url, create_connection=DirectConnection, ping_interval=None) as ws:
                ws.on_message = direct.append
                opened.set()
                await server.pong_received(b"hello")
                assert ws.state.name == "OPEN"
            return direct

    assert run(scenario()) == [b"1", b"2", b"3"]


@pytest.mark.parametrize(
    "odd, expected, code",
    [
        pytest.param(
            frame(b"frag", fin=False) + frame(b"ment", opcode=0x0), [b"fragment", b"after"], None, id="fragments"
        ),
        pytest.param(frame(b"x" * 200, opcode=0x9), [], 1002, id="a ping too long"),
    ],
)
def test_anything_else_goes_to_websockets_for_good_in_order(odd, expected, code):
    async def scenario():
        opened = asyncio.Event()
        async with RawServer([opened, frame(b"before"), odd, frame(b"after"), frame(b"", opcode=0x8)]) as url:
            return await read_all(url, opened, 3)

    direct, queued, closed = run(scenario())
    assert direct == [b"before"] and queued == expected
    assert (closed and closed.sent.code) == code  # a long ping fails the connection; fragments are read as ever


@pytest.mark.parametrize(
    "odd, code",
    [
        pytest.param(frame(b"x" * 2000), 1009, id="past max_size"),
        pytest.param(frame(b"masked", mask=True), 1002, id="masked"),
        pytest.param(frame(b"reserved", reserved=0x40), 1002, id="a reserved bit"),
        pytest.param(frame(b"", opcode=0x3), 1002, id="a reserved opcode"),
    ],
)
def test_a_frame_websockets_refuses_fails_the_connection_as_it_did(odd, code):
    async def scenario():
        opened = asyncio.Event()
        async with RawServer([opened, frame(b"before"), odd, frame(b"after")]) as url:
            return await read_all(url, opened, 2, max_size=1000)

    direct, queued, closed = run(scenario())
    assert direct == [b"before"] and not queued
    assert isinstance(closed, ConnectionClosedError) and closed.sent.code == code


def test_a_frame_cut_short_by_the_end_of_the_stream_is_an_abnormal_closure():
    async def scenario():
        opened = asyncio.Event()
        async with RawServer([opened, frame(b"whole") + frame(os.urandom(50))[:20], CLOSE]) as url:
            return await read_all(url, opened, 2)

    direct, queued, closed = run(scenario())
    assert direct == [b"whole"] and not queued
    assert isinstance(closed, ConnectionClosedError)

"""SPDY/3.1 framing, the server's half, as kubectl's port-forward speaks it (moby/spdystream).

Sans-IO: :class:`SpdyFramer` turns received bytes into frames (:meth:`SpdyFramer.feed`) and
frames into bytes (:meth:`SpdyFramer.syn_reply`, :meth:`SpdyFramer.data`, ...); whoever owns
the connection moves the bytes. The same bytes travel over a raw HTTP Upgrade
(``Upgrade: SPDY/3.1``, kubectl 1.30) or inside WebSocket binary messages
(``SPDY/3.1+portforward.k8s.io``, kubectl 1.31+).

A frame is 8 bytes of header then its payload. Control frames: ``1 | version(15) |
type(16) | flags(8) | length(24)``; data frames: ``0 | stream id(31) | flags(8) |
length(24)``. Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are ``count(32)`` then
``len(32) name len(32) value`` pairs, compressed with one zlib stream per direction that
starts from :data:`HEADER_DICTIONARY` and is sync-flushed after each block. spdystream keeps
no flow-control windows, so WINDOW_UPDATE and SETTINGS are read and ignored.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

__all__ = [
    "FLAG_FIN",
    "HEADER_DICTIONARY",
    "RST_CANCEL",
    "RST_PROTOCOL_ERROR",
    "Data",
    "GoAway",
    "Headers",
    "Ping",
    "RstStream",
    "SpdyError",
    "SpdyFramer",
    "SynReply",
    "SynStream",
]

VERSION = 3
FLAG_FIN = 0x01
MAX_DATA_LENGTH = (1 << 24) - 1

TYPE_SYN_STREAM = 1
TYPE_SYN_REPLY = 2
TYPE_RST_STREAM = 3
TYPE_SETTINGS = 4
TYPE_PING = 6
TYPE_GOAWAY = 7
TYPE_HEADERS = 8
TYPE_WINDOW_UPDATE = 9

RST_PROTOCOL_ERROR = 1
RST_INVALID_STREAM = 2
RST_CANCEL = 5

# The header compression dictionary of the SPDY/3 specification (section 2.6.10.1).
HEADER_DICTIONARY = (
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put"
    b"\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0e"
    b"accept-charset\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language"
    b"\x00\x00\x00\raccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\r"
    b"authorization\x00\x00\x00\rcache-control\x00\x00\x00\nconnection\x00\x00\x00\x0c"
    b"content-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language"
    b"\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location\x00\x00\x00\x0b"
    b"content-md5\x00\x00\x00\rcontent-range\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04"
    b"date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00"
    b"\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11"
    b"if-modified-since\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range\x00\x00\x00"
    b"\x13if-unmodified-since\x00\x00\x00\rlast-modified\x00\x00\x00\x08location\x00\x00"
    b"\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00"
    b"\x00\x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00"
    b"\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer"
    b"\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\nuser-agent"
    b"\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10"
    b"www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status"
    b"\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00"
    b"\x03url\x00\x00\x00\x06public\x00\x00\x00\nset-cookie\x00\x00\x00\nkeep-alive\x00"
    b"\x00\x00\x06origin100101201202205206300302303304305306307402405406407408409410411"
    b"412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved "
    b"Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal "
    b"Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul "
    b"Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,"
    b"text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,"
    b"text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
    b"charset=iso-8859-1,utf-,*,enq=0."
)


class SpdyError(ValueError):
    """The peer sent something that is not SPDY/3.1: the connection cannot go on."""


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: dict[str, str]
    fin: bool


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: dict[str, str]
    fin: bool


@dataclass(frozen=True)
class Headers:
    stream_id: int
    headers: dict[str, str]
    fin: bool


@dataclass(frozen=True)
class Data:
    stream_id: int
    payload: bytes
    fin: bool


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int
    status: int


Frame = SynStream | SynReply | Headers | Data | RstStream | Ping | GoAway


@dataclass
class SpdyFramer:
    """One connection's framing state: the buffered input and both zlib streams."""

    _buffer: bytearray = field(default_factory=bytearray)
    _inflate: zlib._Decompress = field(
        default_factory=lambda: zlib.decompressobj(zdict=HEADER_DICTIONARY)
    )
    _deflate: zlib._Compress = field(
        default_factory=lambda: zlib.compressobj(9, zlib.DEFLATED, 15, zdict=HEADER_DICTIONARY)
    )

    # -- reading -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Frame]:
        """The complete frames ``data`` ends (a partial frame waits for the next call)."""
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            header = bytes(self._buffer[:8])
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            frame = self._parse(header, payload)
            if frame is not None:
                frames.append(frame)
        return frames

    def _parse(self, header: bytes, payload: bytes) -> Frame | None:
        first, flags = struct.unpack(">I", header[:4])[0], header[4]
        if not first & 0x80000000:
            return Data(first & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN))
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise SpdyError(f"SPDY version {version} frames are not understood (3 is)")
        fin = bool(flags & FLAG_FIN)
        try:
            if kind == TYPE_SYN_STREAM:
                (stream_id,) = struct.unpack(">I", payload[:4])
                return SynStream(stream_id & 0x7FFFFFFF, self._headers(payload[10:]), fin)
            if kind in (TYPE_SYN_REPLY, TYPE_HEADERS):
                (stream_id,) = struct.unpack(">I", payload[:4])
                block = self._headers(payload[4:])
                if kind == TYPE_SYN_REPLY:
                    return SynReply(stream_id & 0x7FFFFFFF, block, fin)
                return Headers(stream_id & 0x7FFFFFFF, block, fin)
            if kind == TYPE_RST_STREAM:
                stream_id, code = struct.unpack(">II", payload[:8])
                return RstStream(stream_id & 0x7FFFFFFF, code)
            if kind == TYPE_PING:
                return Ping(struct.unpack(">I", payload[:4])[0])
            if kind == TYPE_GOAWAY:
                last, code = struct.unpack(">II", payload[:8])
                return GoAway(last & 0x7FFFFFFF, code)
        except struct.error:
            raise SpdyError(f"SPDY control frame of type {kind} is too short") from None
        return None  # SETTINGS, WINDOW_UPDATE, and types this server does not act on

    def _headers(self, compressed: bytes) -> dict[str, str]:
        try:
            block = self._inflate.decompress(compressed)
        except zlib.error as error:
            raise SpdyError(f"SPDY header block does not decompress ({error})") from None
        headers: dict[str, str] = {}
        try:
            (count,) = struct.unpack(">I", block[:4])
            offset = 4
            for _ in range(count):
                (size,) = struct.unpack(">I", block[offset : offset + 4])
                name = block[offset + 4 : offset + 4 + size].decode("latin-1").lower()
                offset += 4 + size
                (size,) = struct.unpack(">I", block[offset : offset + 4])
                value = block[offset + 4 : offset + 4 + size].decode("latin-1")
                offset += 4 + size
                # Several values travel NUL-separated; the first is the one headers.Get reads.
                headers.setdefault(name, value.split("\x00")[0])
        except struct.error:
            raise SpdyError("SPDY header block is cut short") from None
        return headers

    # -- writing -----------------------------------------------------------------------------

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(payload)) + payload

    def _header_block(self, headers: dict[str, str]) -> bytes:
        block = struct.pack(">I", len(headers))
        for name, value in headers.items():
            raw_name, raw_value = name.lower().encode("latin-1"), value.encode("latin-1")
            block += struct.pack(">I", len(raw_name)) + raw_name
            block += struct.pack(">I", len(raw_value)) + raw_value
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, str], *, fin: bool = False) -> bytes:
        """A SYN_REPLY accepting the client's stream ``stream_id``."""
        payload = struct.pack(">I", stream_id) + self._header_block(headers)
        return self._control(TYPE_SYN_REPLY, FLAG_FIN if fin else 0, payload)

    @staticmethod
    def data(stream_id: int, payload: bytes, *, fin: bool = False) -> bytes:
        """DATA frames carrying ``payload`` (split at the 24-bit length limit), FIN on the last."""
        frames = b""
        chunks = [payload[i : i + MAX_DATA_LENGTH] for i in range(0, len(payload), MAX_DATA_LENGTH)]
        for index, chunk in enumerate(chunks or [b""]):
            last = index == len(chunks or [b""]) - 1
            flags = FLAG_FIN if fin and last else 0
            frames += struct.pack(">II", stream_id, flags << 24 | len(chunk)) + chunk
        return frames

    @classmethod
    def rst_stream(cls, stream_id: int, status: int) -> bytes:
        return cls._control(TYPE_RST_STREAM, 0, struct.pack(">II", stream_id, status))

    @classmethod
    def ping(cls, ping_id: int) -> bytes:
        return cls._control(TYPE_PING, 0, struct.pack(">I", ping_id))

    @classmethod
    def goaway(cls, last_stream_id: int, status: int = 0) -> bytes:
        return cls._control(TYPE_GOAWAY, 0, struct.pack(">II", last_stream_id, status))

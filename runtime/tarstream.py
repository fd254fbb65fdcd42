"""A tar archive's members read in one pass, header by header, from a gzip-compressed or plain stream.

`tarfile` spends more time per member than writing the member takes (a `TarInfo` object, a pax
dictionary and several layered reads a member, and a flash build archive has a pax header before
every member); this reader parses the 512-byte headers itself and leaves every decision about a
member to its caller. It reads what `tarfile` reads (ustar with its name prefix, GNU long names and
long link names, pax `path`, `linkpath`, `size` and `mtime`, base-256 numbers) and is stricter
where `tarfile` is lenient: a bad header checksum or a stream that ends inside a member or before
its gzip trailer is an error, not the end of the archive.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

BLOCK = 512
_READ = 1 << 20  # compressed bytes per read
_INFLATED = 4 << 20  # at most this much output per inflate call, so a small input cannot balloon
_META_MAX = 1 << 20  # bytes of a pax header or GNU long name
_TRAILER_MAX = 1 << 20  # bytes after the end-of-archive block read to reach the gzip trailer
_TIME_MAX = 1 << 40  # seconds either side of 1970 a member's mtime may be
_GZIP = b"\x1f\x8b"
_OTHER_COMPRESSION = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}

FILE, DIR, SYMLINK, HARDLINK, OTHER = "file", "dir", "symlink", "hardlink", "other"
_KINDS = {b"0": FILE, b"\0": FILE, b"7": FILE, b"1": HARDLINK, b"2": SYMLINK, b"5": DIR}
_PAX, _PAX_GLOBAL, _LONG_NAME, _LONG_LINK = b"xX", b"g", b"L", b"K"
_EXTENDED = _PAX + _PAX_GLOBAL + _LONG_NAME + _LONG_LINK


class TarFormatError(Exception):
    """The stream is not a readable tar archive: corrupt, truncated or of another format."""


@dataclass(slots=True)
class Member:
    name: str
    kind: str  # FILE, DIR, SYMLINK, HARDLINK or OTHER (devices, FIFOs, sparse and unknown types)
    mode: int
    size: int  # bytes of data that follow the header (files only)
    mtime: float
    linkname: str


class TarReader:
    """Iterate over `members()`; a file member's data is `data()` or `data_chunks()`, before the next."""

    def __init__(self, source: IO[bytes]):
        self._chunks = _Inflater(source)
        self._buffer = b""
        self._offset = 0
        self._unread = 0  # data of the current member not read yet

    def members(self) -> Iterator[Member]:
        overrides: dict[str, str] = {}
        while True:
            header = self._exactly(BLOCK, at_boundary=True)
            if (
                header is None or header.count(0) == BLOCK
            ):  # the end-of-archive block (or no more data)
                self._chunks.finish()
                return
            member, typeflag = _parse_header(header)
            if typeflag in _EXTENDED:
                if member.size > _META_MAX:
                    raise TarFormatError(
                        f"an extended header of {member.size} bytes (at most {_META_MAX})"
                    )
                data = self._exactly(member.size) or b""
                self._skip(-member.size % BLOCK)
                if typeflag in _PAX_GLOBAL:
                    if {"path", "linkpath", "size"} & _pax_records(data).keys():
                        raise TarFormatError(
                            "a global pax header sets a member's name, link or size"
                        )
                elif typeflag in _PAX:
                    for key, value in _pax_records(data).items():
                        overrides.setdefault(key, value)  # an earlier header wins, as in tarfile
                else:
                    overrides.setdefault(
                        "path" if typeflag in _LONG_NAME else "linkpath", _text(data)
                    )
                continue
            _apply(member, overrides)
            overrides = {}
            has_data = member.kind in (FILE, OTHER)  # as in tarfile, only these carry data
            self._unread = member.size if has_data else 0
            yield member
            self._skip(self._unread)
            if has_data:
                self._skip(-member.size % BLOCK)

    def data(self) -> bytes:
        """The current member's data, whole."""
        size, self._unread = self._unread, 0
        return self._exactly(size) or b""

    def data_chunks(self) -> Iterator[bytes]:
        """The current member's data in pieces, for members too large to hold at once."""
        while self._unread > 0:
            if self._offset >= len(self._buffer):
                self._refill()
            piece = self._buffer[self._offset : self._offset + self._unread]
            self._offset += len(piece)
            self._unread -= len(piece)
            yield piece

    def _skip(self, size: int) -> None:
        while size > 0:
            if self._offset >= len(self._buffer):
                self._refill()
            step = min(size, len(self._buffer) - self._offset)
            self._offset += step
            size -= step

    def _refill(self) -> None:
        chunk = self._chunks.next()
        if chunk is None:
            raise TarFormatError("the archive ends in the middle of a member")
        self._buffer, self._offset = chunk, 0

    def _exactly(self, size: int, at_boundary: bool = False) -> bytes | None:
        end = self._offset + size
        if end <= len(self._buffer):
            self._offset = end
            return self._buffer[end - size : end]
        pieces = [self._buffer[self._offset :]]
        have = len(pieces[0])
        while have < size:
            chunk = self._chunks.next()
            if chunk is None:
                if at_boundary and have == 0:
                    return None  # the data ends between two members: the end, as tarfile reads it
                raise TarFormatError("the archive ends in the middle of a member")
            take = min(size - have, len(chunk))
            pieces.append(chunk[:take])
            have += take
            self._buffer, self._offset = chunk, take
        return b"".join(pieces)


def _parse_header(header: bytes) -> tuple[Member, bytes]:
    checksum = _octal(header[148:156])
    unsigned = sum(header) - sum(header[148:156]) + 8 * 32  # the checksum field counts as spaces
    if checksum != unsigned and checksum != unsigned - 256 * sum(1 for b in header if b >= 128):
        raise TarFormatError(
            "a header's checksum does not match (not a tar archive, or a corrupt one)"
        )
    typeflag = header[156:157]
    size = _number(header[124:136])
    if typeflag in _EXTENDED:
        return Member("", OTHER, 0, size, 0, ""), typeflag
    name = _text(header[:100])
    if (
        header[345] and header[257:263] == b"ustar\0"
    ):  # POSIX ustar's name prefix (GNU's is no prefix)
        name = _text(header[345:500]) + "/" + name
    kind = _KINDS.get(typeflag, OTHER)
    if kind == FILE and typeflag == b"\0" and name.endswith("/"):
        kind = DIR  # an old tar's directory: a regular file whose name ends with a slash
    linkname = _text(header[157:257]) if kind in (SYMLINK, HARDLINK) else ""
    return Member(
        name, kind, _octal(header[100:108]), size, _mtime(_number(header[136:148])), linkname
    ), typeflag


def _apply(member: Member, overrides: dict[str, str]) -> None:
    """A pax header's or GNU long name's values, over the ustar header's."""
    if not overrides:
        return
    if any(key.startswith("GNU.sparse.") for key in overrides):
        member.kind = OTHER  # a sparse file: refused as a special file
    member.name = overrides.get("path", member.name)
    member.linkname = overrides.get("linkpath", member.linkname)
    if "size" in overrides:
        member.size = _decimal(overrides["size"])
    if "mtime" in overrides:
        try:
            member.mtime = _mtime(float(overrides["mtime"]))
        except ValueError:
            raise TarFormatError(f"a pax mtime of {overrides['mtime']!r}") from None


def _mtime(value: float) -> float:
    """A modification time the filesystem can store; 0 (left unset) for one it cannot."""
    return value if -_TIME_MAX < value < _TIME_MAX else 0.0  # NaN too


def _pax_records(data: bytes) -> dict[str, str]:
    """`length key=value\\n` records (POSIX pax); an empty value is no override."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data) and data[position] != 0:
        space = data.find(b" ", position)
        length = (
            _decimal(data[position:space].decode("ascii", "replace")) if space > position else 0
        )
        end = position + length
        if space < 0 or end > len(data) or end <= space + 1 or data[end - 1] != 0x0A:
            raise TarFormatError("a malformed pax header")
        key, equals, value = data[space + 1 : end - 1].partition(b"=")
        if not equals:
            raise TarFormatError("a malformed pax header")
        if value:
            records[_text(key)] = _text(value)
        position = end
    return records


def _text(field: bytes) -> str:
    """A NUL-terminated name, decoded as the filesystem will encode it again (bytes kept as they are)."""
    end = field.find(0)
    return (field if end < 0 else field[:end]).decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    if field[0] == 0x80:  # GNU base-256, for values octal cannot hold
        return int.from_bytes(field[1:], "big")
    if field[0] == 0xFF:
        raise TarFormatError("a negative number in a header")
    return _octal(field)


def _octal(field: bytes) -> int:
    end = field.find(0)
    digits = (field if end < 0 else field[:end]).strip(b" ")
    if digits.isdigit():
        try:
            return int(digits, 8)
        except ValueError:
            pass
    elif not digits:
        return 0
    raise TarFormatError(
        "a header field is not an octal number (not a tar archive, or a corrupt one)"
    )


def _decimal(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise TarFormatError(f"a malformed pax number {text!r}")
    return int(text)


class _Inflater:
    """The archive's bytes, decompressed, in chunks of up to 4 MiB."""

    def __init__(self, source: IO[bytes]):
        self._chunks = self._inflated(source.read)

    def next(self) -> bytes | None:
        """The next chunk, or None at the end of the data."""
        try:
            return next(self._chunks, None)
        except zlib.error as exc:
            raise TarFormatError(f"corrupt gzip data ({exc})") from None

    def finish(self) -> None:
        """Read on to the end of the compressed stream (a tar's last record), so its checksum is verified."""
        left = _TRAILER_MAX
        while left > 0:
            chunk = self.next()
            if chunk is None:
                return
            left -= len(chunk)

    @staticmethod
    def _inflated(read: Callable[[int], bytes]) -> Iterator[bytes]:
        data = read(_READ)
        magic = data[:6]
        for prefix, name in _OTHER_COMPRESSION.items():
            if magic.startswith(prefix):
                raise TarFormatError(
                    f"compressed with {name}; a flash build artifact is a gzip-compressed tar"
                )
        if not data.startswith(_GZIP):
            while data:  # a plain tar
                yield data
                data = read(_READ)
            return
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while True:
            if inflater.eof:
                data = inflater.unused_data or read(_READ)
                if not data.startswith(_GZIP):
                    return  # bytes after the last gzip member are ignored, as gzip and tar do
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # concatenated gzip members
            elif not data:
                data = read(_READ)
                if not data:
                    raise TarFormatError("the gzip stream is truncated (no end-of-stream marker)")
            out = inflater.decompress(data, _INFLATED)
            data = inflater.unconsumed_tail
            if out:
                yield out

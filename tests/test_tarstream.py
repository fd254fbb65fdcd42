"""The tar reader under the unpacker: every header format tarfile writes reads to the same members.

Each archive is written by the standard library's tarfile (the writer `flash build` uses) in one of
its formats and read back; the reader must see what tarfile sees, and refuse what is not a complete
tar archive.
"""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile

import pytest

from runtime.tarstream import DIR, FILE, HARDLINK, OTHER, SYMLINK, TarFormatError, TarReader

LONG = (
    "pkg/" + "d" * 120 + "/" + "m" * 90 + ".py"
)  # over 100 bytes: a ustar prefix, a GNU or pax long name


def archive(format: int, compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w", format=format) as tar:

        def add(
            name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields: object
        ) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mode, info.mtime = kind, len(data), 0o644, 1_700_000_000
            for key, value in fields.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("pkg", tarfile.DIRTYPE, mode=0o755)
        add("pkg/mod.py", data=b"x = 1\n")
        add(LONG, data=b"long\n")  # ustar splits it into prefix + name; GNU and pax carry it whole
        add("pkg/link", tarfile.SYMTYPE, linkname="mod.py")
        add("pkg/hard", tarfile.LNKTYPE, linkname="pkg/mod.py")
        add("pkg/fifo", tarfile.FIFOTYPE)
        add(
            "big.bin",
            data=b"\1" * 70_000,
            mtime=1_700_000_000.5 if format == tarfile.PAX_FORMAT else 1_700_000_000,
        )
        add("empty.txt")
    return buffer.getvalue()


def read_all(data: bytes) -> list[tuple[str, str, int, float, str, bytes]]:
    reader = TarReader(io.BytesIO(data))
    return [
        (
            m.name.rstrip("/"),
            m.kind,
            m.mode,
            m.mtime,
            m.linkname,
            reader.data() if m.kind == FILE else b"",
        )
        for m in reader.members()
    ]


@pytest.mark.parametrize("format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("compress", [True, False])
def test_every_format_reads_as_tarfile_reads_it(format, compress):
    data = archive(format, compress)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = [
            (
                m.name,
                m.type,
                m.mode,
                m.mtime,
                m.linkname,
                tar.extractfile(m).read() if m.isfile() else b"",
            )
            for m in tar
        ]
    kinds = {
        tarfile.DIRTYPE: DIR,
        tarfile.REGTYPE: FILE,
        tarfile.SYMTYPE: SYMLINK,
        tarfile.LNKTYPE: HARDLINK,
        tarfile.FIFOTYPE: OTHER,
    }
    assert read_all(data) == [
        (n, kinds[t], mode, mtime, link, body) for n, t, mode, mtime, link, body in expected
    ]
    assert any(name == LONG for name, *_ in read_all(data))


def test_large_members_can_be_read_in_pieces():
    data = archive(tarfile.PAX_FORMAT)
    reader = TarReader(io.BytesIO(data))
    for member in reader.members():
        if member.name == "big.bin":
            pieces = list(reader.data_chunks())
            assert b"".join(pieces) == b"\1" * 70_000


def test_unread_data_is_skipped():
    reader = TarReader(io.BytesIO(archive(tarfile.PAX_FORMAT)))
    assert [m.name for m in reader.members()][-2:] == ["big.bin", "empty.txt"]


def test_an_old_style_directory_is_a_regular_file_named_with_a_slash():
    info = tarfile.TarInfo("old/")
    info.type = tarfile.AREGTYPE
    data = gzip.compress(info.tobuf(format=tarfile.USTAR_FORMAT) + b"\0" * 1024)
    assert [(m.name, m.kind) for m in TarReader(io.BytesIO(data)).members()] == [("old/", DIR)]


def test_concatenated_gzip_members_are_one_stream():
    plain = archive(tarfile.PAX_FORMAT, compress=False)
    half = plain.index(b"big.bin") // 512 * 512  # on a header boundary
    data = gzip.compress(plain[:half]) + gzip.compress(plain[half:])
    assert read_all(data) == read_all(gzip.compress(plain))


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: gzip.compress(gzip.decompress(d).partition(b"\1" * 512)[0]),
            "ends in the middle",
        ),  # in big.bin
        (
            lambda d: d[:-12],
            "truncated",
        ),  # the gzip trailer cut off: the end-of-archive block is read, the CRC is not
        (
            lambda d: gzip.compress(gzip.decompress(d)[:700]),
            "ends in the middle",
        ),  # inside the second header
        (lambda d: gzip.compress(b"X" + gzip.decompress(d)[1:]), "checksum"),
        (lambda d: gzip.compress(bytes(148) + b"not-octl" + bytes(356)), "not an octal number"),
        (lambda d: bz2.compress(gzip.decompress(d)), "bzip2"),
        (
            lambda d: d[:-8] + bytes([d[-8] ^ 1]) + d[-7:],
            "corrupt gzip data",
        ),  # the CRC no longer matches
    ],
)
def test_what_is_not_a_whole_tar_archive_is_refused(damage, message):
    with pytest.raises(TarFormatError, match=message):
        read_all(damage(archive(tarfile.PAX_FORMAT)))


def test_a_global_pax_header_may_not_rename_members():
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"path": "evil"}
    ) as tar:
        tar.addfile(tarfile.TarInfo("a.py"))
    with pytest.raises(TarFormatError, match="global pax header"):
        read_all(buffer.getvalue())


def test_an_oversized_extended_header_is_refused_before_it_is_read():
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, 1 << 30
    with pytest.raises(TarFormatError, match="extended header"):
        read_all(gzip.compress(info.tobuf(format=tarfile.USTAR_FORMAT)))


def test_a_pax_sparse_file_is_another_kind():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("sparse")
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
        tar.addfile(info)
    assert [(m.name, m.kind) for m in TarReader(io.BytesIO(buffer.getvalue())).members()] == [
        ("sparse", OTHER)
    ]


def test_an_unstorable_mtime_is_left_unset():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("future.py")
        info.mtime = 1 << 70  # base-256 in a GNU header
        tar.addfile(info)
    assert [m.mtime for m in TarReader(io.BytesIO(buffer.getvalue())).members()] == [0.0]

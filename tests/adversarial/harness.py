"""Hostile input against a running worker: a corpus of raw HTTP payloads, a mixed soak, faults.

Everything here talks to a worker over TCP only (directly or through HAProxy); tests/adversarial/
run.py drives it for `make test-adversarial`, tests/test_adversarial_fast.py runs its fast subset.

Desync, the failure this is built to find: a client gets an answer that is not its own request's.
Every request the harness sends carries a value it can recognise in the answer (an item id, a
number echoed back, an X-Request-ID); a request hidden inside another (smuggled) asks for item
SMUGGLED, which no answer may ever carry.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

SMUGGLED = 666666  # the item id of every request hidden inside another one
QUIET = 1.0  # seconds without a byte after which a server that keeps the connection open is done answering
ANSWER_TIMEOUT = 15.0  # seconds a probe may wait for its answer

_ids = itertools.count(1000)
_ids_lock = threading.Lock()


def next_id() -> int:
    with _ids_lock:
        return next(_ids)


# --- reading answers off a raw socket -------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def item_id(self) -> int | None:
        """The item id an answer from GET /items/{id} carries, or None."""
        data = self.json()
        return data.get("item_id") if isinstance(data, dict) else None


def _parse_one(buf: bytes, closed: bool) -> tuple[Answer, bytes] | None:
    """The first complete response in `buf` and the bytes after it, or None if it is incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end == -1:
        return None
    head, rest = buf[:end].decode("latin-1"), buf[end + 4 :]
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {buf[:200]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status < 200 or status in (204, 304):
        return Answer(status, headers, b""), rest
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, pos = b"", 0
        while True:
            line_end = rest.find(b"\r\n", pos)
            if line_end == -1:
                return None
            size = int(rest[pos:line_end].split(b";")[0], 16)
            if size == 0:
                trailer_end = rest.find(b"\r\n", line_end + 2)
                if trailer_end == -1:
                    return None
                return Answer(status, headers, body), rest[trailer_end + 2 :]
            if len(rest) < line_end + 2 + size + 2:
                return None
            body += rest[line_end + 2 : line_end + 2 + size]
            pos = line_end + 2 + size + 2
    if "content-length" in headers:
        length = int(headers["content-length"])
        if len(rest) < length:
            return None
        return Answer(status, headers, rest[:length]), rest[length:]
    if not closed:
        return None  # delimited by the close
    return Answer(status, headers, rest), b""


def read_answers(
    sock: socket.socket,
    want: int | None = None,
    quiet: float = QUIET,
    timeout: float = ANSWER_TIMEOUT,
) -> tuple[list[Answer], bool]:
    """Answers read until the server closes, `want` answers have come, or it is quiet for `quiet`
    seconds (after `timeout` seconds in all at most); (answers, whether the server closed)."""
    buf, answers, closed = b"", [], False
    deadline = time.monotonic() + timeout
    while want is None or len(answers) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(min(quiet, left) if want is None else left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            closed = True
        buf += chunk
        while buf:
            parsed = _parse_one(buf, closed)
            if parsed is None:
                break
            answer, buf = parsed
            answers.append(answer)
        if closed:
            break
    return answers, closed


def probe_request(item: int) -> bytes:
    return b"GET /items/%d?verbose=true HTTP/1.1\r\nHost: probe\r\n\r\n" % item


def is_probe_answer(answer: Answer, item: int) -> bool:
    return answer.status == 200 and answer.json() == {"item_id": item, "verbose": True}


# --- the corpus -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """Raw bytes to send. `allowed` item ids may be answered (in this order) besides errors;
    `idle` says whether a server that keeps the connection open then waits for a new request
    (False where it rightly waits for more body, so a probe there would be read as body)."""

    name: str
    data: (
        bytes | tuple[bytes, ...]
    )  # a tuple: parts sent PAUSE seconds apart (packets of their own)
    allowed: tuple[int, ...] = ()
    idle: bool = True

    @property
    def parts(self) -> tuple[bytes, ...]:
        return self.data if isinstance(self.data, tuple) else (self.data,)


PAUSE = 0.3


def _req(
    method: str, target: str, headers: list[str], body: bytes = b"", version: str = "HTTP/1.1"
) -> bytes:
    head = f"{method} {target} {version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    return head.encode("latin-1") + body


def _soak_post(rid: str, body: bytes) -> bytes:
    """The soak's `POST /scalars` with a JSON body and a request id."""
    headers = ["Host: soak", "Content-Type: application/json", f"X-Request-ID: {rid}"]
    return _req("POST", "/scalars", [*headers, f"Content-Length: {len(body)}"], body)


def _get(item: int) -> bytes:
    return _req("GET", f"/items/{item}?verbose=true", ["Host: x"])


_HIDDEN = _get(SMUGGLED)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def corpus() -> list[Payload]:
    """The raw payloads, each a known way to confuse an HTTP/1.1 parser or a proxy in front of it."""
    json_body = b'{"y": 1}'
    post = ["Host: x", "Content-Type: application/json"]
    chunked_hidden = _chunk(_HIDDEN) + b"0\r\n\r\n"
    # A chunked body that ends before a hidden request, with a Content-Length covering both: a
    # proxy that frames by the length forwards it as one request; a server that frames by the
    # chunks would serve the hidden one.
    ended_hidden = b"0\r\n\r\n" + _HIDDEN
    cl_hidden = f"Content-Length: {len(ended_hidden)}"
    items = [
        # request lines
        Payload("garbage", b"\x00\x01\x02\xff\xfe garbage\r\n\r\n"),
        Payload("bad-method-chars", _req("G(T", "/items/1", ["Host: x"])),
        Payload("lowercase-method", _req("get", "/items/2", ["Host: x"]), allowed=(2,)),
        Payload("no-version", b"GET /items/3?verbose=true\r\n\r\n", allowed=(3,)),
        Payload("http-0.9", b"GET /items/3\r\n"),  # no head end: the head deadline or a 400
        Payload(
            "bad-version",
            _req("GET", "/items/4?verbose=true", ["Host: x"], version="HTTP/9.9"),
            allowed=(4,),
        ),
        Payload(
            "http-2.0-version",
            _req("GET", "/items/4?verbose=true", ["Host: x"], version="HTTP/2.0"),
            allowed=(4,),
        ),
        Payload("space-in-target", _req("GET", "/items/5 6", ["Host: x"])),
        Payload(
            "tab-separators",
            b"GET\t/items/7?verbose=true\tHTTP/1.1\r\nHost: x\r\n\r\n",
            allowed=(7,),
        ),
        Payload("nul-in-target", _req("GET", "/items/8\x00", ["Host: x"])),
        Payload(
            "absolute-form",
            _req("GET", "http://elsewhere/items/9?verbose=true", ["Host: x"]),
            allowed=(9,),
        ),
        Payload("asterisk-form", _req("OPTIONS", "*", ["Host: x"])),
        Payload("connect-method", _req("CONNECT", "elsewhere:443", ["Host: elsewhere:443"])),
        Payload("long-target-100KiB", _req("GET", "/items/10?" + "a" * 100 * 1024, ["Host: x"])),
        Payload("no-host", _req("GET", "/items/11?verbose=true", []), allowed=(11,)),
        Payload(
            "two-hosts",
            _req("GET", "/items/12?verbose=true", ["Host: a", "Host: b"]),
            allowed=(12,),
        ),
        # header lines
        Payload(
            "obs-fold",
            _req("GET", "/items/13?verbose=true", ["Host: x", "X-A: a", " folded"]),
            allowed=(13,),
        ),
        Payload(
            "folded-transfer-encoding",
            _req(
                "POST",
                "/scalars",
                [*post, cl_hidden, "Transfer-Encoding:", " chunked"],
                ended_hidden,
            ),
        ),
        Payload("header-without-colon", _req("GET", "/items/14", ["Host: x", "NoColonHere"])),
        Payload(
            "space-before-colon", _req("POST", "/scalars", [*post, "Content-Length : 8"], json_body)
        ),
        Payload("nul-in-header", _req("GET", "/items/15", ["Host: x", "X-A: a\x00b"])),
        Payload("non-ascii-header-name", _req("GET", "/items/16", ["Host: x", "X-\xe9: v"])),
        Payload("cr-in-header-value", _req("GET", "/items/17", ["Host: x", "X-A: a\rb"])),
        Payload("bare-lf-head", b"GET /items/18?verbose=true HTTP/1.1\nHost: x\n\n", allowed=(18,)),
        Payload("bare-cr-head", b"GET /items/19 HTTP/1.1\rHost: x\r\r", idle=False),
        # Content-Length
        Payload(
            "duplicate-cl-equal",
            _req("POST", "/scalars", [*post, "Content-Length: 8", "Content-Length: 8"], json_body),
        ),
        Payload(
            "duplicate-cl-differ",
            _req(
                "POST",
                "/scalars",
                [*post, "Content-Length: 8", "Content-Length: 49"],
                json_body + _HIDDEN[:41],
            ),
        ),
        Payload(
            "cl-list",
            _req("POST", "/scalars", [*post, "Content-Length: 8, 49"], json_body + _HIDDEN[:41]),
        ),
        Payload("cl-plus-sign", _req("POST", "/scalars", [*post, "Content-Length: +8"], json_body)),
        Payload("cl-hex", _req("POST", "/scalars", [*post, "Content-Length: 0x8"], json_body)),
        Payload("cl-negative", _req("POST", "/scalars", [*post, "Content-Length: -1"], json_body)),
        Payload(
            "cl-huge",
            _req("POST", "/scalars", [*post, "Content-Length: 99999999999999999999999"], json_body),
            idle=False,
        ),
        Payload(
            "cl-then-pipelined",
            _req("POST", "/scalars", [*post, "Content-Length: 8"], json_body + _get(63)),
            allowed=(63,),
        ),
        # Transfer-Encoding and smuggling shapes
        Payload(
            "cl-te",
            _req(
                "POST", "/scalars", [*post, cl_hidden, "Transfer-Encoding: chunked"], ended_hidden
            ),
        ),
        Payload(
            "te-cl",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked", "Content-Length: 4"],
                chunked_hidden,
            ),
        ),
        Payload(
            "te-cl-zero",
            _req(
                "POST",
                "/scalars",
                [*post, "Content-Length: 0", "Transfer-Encoding: chunked"],
                chunked_hidden,
            ),
        ),
        Payload(
            "te-xchunked",
            _req(
                "POST", "/scalars", [*post, cl_hidden, "Transfer-Encoding: xchunked"], ended_hidden
            ),
        ),
        Payload(
            "te-chunked-identity",
            _req(
                "POST", "/scalars", [*post, "Transfer-Encoding: chunked, identity"], chunked_hidden
            ),
        ),
        Payload(
            "te-identity-chunked-cl",
            _req(
                "POST",
                "/scalars",
                [*post, cl_hidden, "Transfer-Encoding: identity, chunked"],
                ended_hidden,
            ),
        ),
        Payload(
            "te-twice",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked", "Transfer-Encoding: identity", cl_hidden],
                ended_hidden,
            ),
        ),
        Payload(
            "te-space-before-colon",
            _req(
                "POST", "/scalars", [*post, "Transfer-Encoding : chunked", cl_hidden], ended_hidden
            ),
        ),
        Payload(
            "te-tab-value",
            _req(
                "POST", "/scalars", [*post, "Transfer-Encoding:\tchunked", cl_hidden], ended_hidden
            ),
        ),
        Payload(
            "te-uppercase",
            _req(
                "POST", "/scalars", [*post, "Transfer-Encoding: CHUNKED", cl_hidden], ended_hidden
            ),
        ),
        Payload(
            "te-http-1.0",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                chunked_hidden,
                version="HTTP/1.0",
            ),
        ),
        Payload(
            "te-on-get",
            _req(
                "GET",
                "/items/20?verbose=true",
                ["Host: x", "Transfer-Encoding: chunked"],
                chunked_hidden,
            ),
            allowed=(20,),
        ),
        # chunk framing
        Payload(
            "chunk-size-not-hex",
            _req(
                "POST", "/scalars", [*post, "Transfer-Encoding: chunked"], b"zz\r\n{}\r\n0\r\n\r\n"
            ),
        ),
        Payload(
            "chunk-size-negative",
            _req(
                "POST", "/scalars", [*post, "Transfer-Encoding: chunked"], b"-1\r\n{}\r\n0\r\n\r\n"
            ),
        ),
        Payload(
            "chunk-size-overflow",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                b"fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
            ),
            idle=False,
        ),
        Payload(
            "chunk-size-too-big",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                b"ff\r\n" + json_body + b"\r\n0\r\n\r\n" + _HIDDEN,
            ),
            idle=False,
        ),
        Payload(
            "chunk-size-too-small",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                b"2\r\n" + json_body + b"\r\n0\r\n\r\n" + _HIDDEN,
            ),
        ),
        Payload(
            "chunk-bare-lf",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                b"8\n" + json_body + b"\n0\n\n",
            ),
        ),
        Payload(
            "chunk-bare-lf-last",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                _chunk(json_body) + b"0\n\n" + _get(65),
            ),
            allowed=(65,),
        ),
        Payload(
            "chunk-data-no-crlf",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                b"8\r\n" + json_body + b"XX0\r\n\r\n",
            ),
        ),
        Payload(
            "chunk-ext-long",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                b"8;" + b"a" * 70000 + b"\r\n" + json_body + b"\r\n0\r\n\r\n",
            ),
            idle=False,
        ),
        Payload(
            "chunk-trailer-content-length",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                _chunk(json_body) + b"0\r\nContent-Length: 45\r\n\r\n" + _get(64),
            ),
            allowed=(64,),
        ),
        Payload(
            "one-byte-chunks",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                b"".join(_chunk(json_body[i : i + 1]) for i in range(len(json_body)))
                + b"0\r\n\r\n",
            ),
        ),
        # oversized heads
        Payload("header-20KiB", _req("GET", "/items/21", ["Host: x", "X-Big: " + "a" * 20 * 1024])),
        Payload(
            "headers-200",
            _req("GET", "/items/22", ["Host: x", *(f"X-H{i}: v" for i in range(200))]),
        ),
        Payload(
            "header-1MiB", _req("GET", "/items/23", ["Host: x", "X-Big: " + "a" * 1024 * 1024])
        ),
        # other protocols
        Payload(
            "h2c-upgrade",
            _req(
                "GET",
                "/items/24?verbose=true",
                [
                    "Host: x",
                    "Connection: Upgrade, HTTP2-Settings",
                    "Upgrade: h2c",
                    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                ],
            ),
            allowed=(24,),
        ),
        Payload(
            "h2c-upgrade-with-body",
            _req(
                "POST",
                "/scalars",
                [
                    *post,
                    "Connection: Upgrade, HTTP2-Settings",
                    "Upgrade: h2c",
                    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                    "Content-Length: 8",
                ],
                json_body,
            ),
        ),
        Payload("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        Payload(
            "h2-preface-then-frames",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        ),
        Payload(
            "upgrade-h2c-body-later",
            (
                _req(
                    "POST",
                    "/scalars",
                    [
                        *post,
                        "Connection: Upgrade",
                        "Upgrade: h2c",
                        f"Content-Length: {len(_HIDDEN)}",
                    ],
                ),
                _HIDDEN,
            ),
        ),
        Payload(
            "upgrade-other-body-later",
            (
                _req(
                    "POST",
                    "/scalars",
                    [
                        *post,
                        "Connection: Upgrade",
                        "Upgrade: foo/2",
                        f"Content-Length: {len(_HIDDEN)}",
                    ],
                ),
                _HIDDEN,
            ),
        ),
        Payload(
            "upgrade-chunked-body-later",
            (
                _req(
                    "POST",
                    "/scalars",
                    [*post, "Connection: Upgrade", "Upgrade: h2c", "Transfer-Encoding: chunked"],
                ),
                chunked_hidden,
            ),
        ),
        Payload(
            "websocket-upgrade",
            _req(
                "GET",
                "/items/25",
                [
                    "Host: x",
                    "Connection: Upgrade",
                    "Upgrade: websocket",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Version: 13",
                ],
            ),
        ),
        # Expect
        Payload(
            "expect-over-cap",
            _req("POST", "/scalars", [*post, "Expect: 100-continue", "Content-Length: 999999999"]),
            idle=False,
        ),
        Payload(
            "expect-with-body",
            _req(
                "POST", "/scalars", [*post, "Expect: 100-continue", "Content-Length: 8"], json_body
            ),
        ),
        Payload(
            "expect-unknown",
            _req(
                "POST",
                "/scalars",
                [*post, "Expect: something-else", "Content-Length: 8"],
                json_body,
            ),
        ),
        Payload(
            "expect-chunked",
            _req(
                "POST",
                "/scalars",
                [*post, "Expect: 100-continue", "Transfer-Encoding: chunked"],
                _chunk(json_body) + b"0\r\n\r\n",
            ),
        ),
        # pipelining
        Payload(
            "cl-body-later",
            (_req("POST", "/scalars", [*post, f"Content-Length: {len(_HIDDEN)}"]), _HIDDEN),
        ),
        Payload(
            "chunked-body-later",
            (_req("POST", "/scalars", [*post, "Transfer-Encoding: chunked"]), chunked_hidden),
        ),
        Payload("pipelined-gets", _get(31) + _get(32) + _get(33), allowed=(31, 32, 33)),
        Payload(
            "pipelined-post-get",
            _req("POST", "/scalars", [*post, "Content-Length: 8"], json_body) + _get(34),
            allowed=(34,),
        ),
        Payload(
            "pipelined-chunked-get",
            _req(
                "POST",
                "/scalars",
                [*post, "Transfer-Encoding: chunked"],
                _chunk(json_body) + b"0\r\n\r\n",
            )
            + _get(35),
            allowed=(35,),
        ),
        Payload(
            "pipelined-after-close",
            _req("GET", "/items/36?verbose=true", ["Host: x", "Connection: close"]) + _HIDDEN,
            allowed=(36,),
        ),
        Payload(
            "pipelined-http-1.0",
            _req("GET", "/items/37?verbose=true", ["Host: x"], version="HTTP/1.0") + _HIDDEN,
            allowed=(37,),
        ),
        Payload(
            "pipelined-20", b"".join(_get(i) for i in range(40, 60)), allowed=tuple(range(40, 60))
        ),
        Payload(
            "get-with-body",
            _req(
                "GET",
                "/items/61?verbose=true",
                ["Host: x", f"Content-Length: {len(_HIDDEN)}"],
                _HIDDEN,
            ),
            allowed=(61,),
        ),
        Payload(
            "delete-with-body",
            _req("DELETE", "/items/62", ["Host: x", f"Content-Length: {len(_HIDDEN)}"], _HIDDEN),
        ),
    ]
    return items


# --- one attack ---------------------------------------------------------------------------------


@dataclass
class AttackResult:
    name: str
    statuses: list[int]
    closed: bool
    same_connection: str  # "served", "refused", "not-tried", or a failure
    fresh_connection: str  # "served" or a failure
    problems: list[str] = field(default_factory=list)


def attack(host: str, port: int, payload: Payload) -> AttackResult:
    """Send one payload on a new connection, then a probe on that connection (when the server keeps
    it open and waits for a request) and on a fresh one. A problem is an answer that belongs to a
    request hidden in the payload, answers in the wrong order, a probe answered with another
    request's answer, a probe left unanswered on an open connection, or a fresh probe not served."""
    problems: list[str] = []
    with socket.create_connection((host, port), timeout=10) as sock:
        try:
            for index, part in enumerate(payload.parts):
                if index:
                    time.sleep(PAUSE)
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused before reading it all: its answer may still be there
        try:
            answers, closed = read_answers(sock)
        except ValueError as exc:
            answers, closed = [], True
            problems.append(f"unparseable answer: {exc}")
        problems += _check_ids(payload, answers)
        same = "not-tried"
        if not closed and payload.idle:
            same = _probe_on(sock, payload.allowed)
            if same not in ("served", "refused"):
                problems.append(f"same connection: {same}")
    fresh = probe_fresh(host, port)
    if fresh != "served":
        problems.append(f"fresh connection: {fresh}")
    return AttackResult(payload.name, [a.status for a in answers], closed, same, fresh, problems)


def _check_ids(payload: Payload, answers: list[Answer]) -> list[str]:
    problems = []
    seen = [a.item_id for a in answers if a.status == 200 and a.item_id is not None]
    if SMUGGLED in seen:
        problems.append(f"desync: the hidden request GET /items/{SMUGGLED} was served")
    expected = [i for i in payload.allowed if i in seen]
    if [i for i in seen if i != SMUGGLED] != expected:
        problems.append(
            f"answers out of order or unexpected: {seen} (allowed {list(payload.allowed)})"
        )
    return problems


def _probe_on(sock: socket.socket, late: tuple[int, ...] = ()) -> str:
    """The probe on a connection the payload left open; an answer to one of the payload's own
    requests (`late`, item ids) that was slower than QUIET is read past."""
    item = next_id()
    try:
        sock.sendall(probe_request(item))
        while True:
            answers, closed = read_answers(sock, want=1)
            if not (answers and answers[0].status == 200 and answers[0].item_id in late):
                break
    except (BrokenPipeError, ConnectionResetError):
        return "refused"
    except ValueError as exc:
        return f"unparseable answer to the probe: {exc}"
    if not answers:
        return "refused" if closed else "probe unanswered on an open connection"
    answer = answers[0]
    if is_probe_answer(answer, item):
        return "served"
    if answer.item_id == SMUGGLED or answer.status < 400:
        return f"desync: the probe for item {item} got {answer.status} {answer.body[:120]!r}"
    return "refused"  # the server answered the leftovers as a bad request; the probe was not served


def probe_fresh(host: str, port: int) -> str:
    item = next_id()
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(probe_request(item))
            answers, _ = read_answers(sock, want=1)
    except OSError as exc:
        return f"error {exc!r}"
    except ValueError as exc:
        return f"unparseable answer: {exc}"
    if not answers:
        return "no answer"
    if not is_probe_answer(answers[0], item):
        return f"wrong answer {answers[0].status} {answers[0].body[:120]!r}"
    return "served"


def run_corpus(host: str, port: int, parallel: int = 4) -> list[AttackResult]:
    """Every payload of the corpus, `parallel` at a time (each on connections of its own)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda payload: attack(host, port, payload), corpus()))


# --- the soak -------------------------------------------------------------------------------------


@dataclass
class SoakStats:
    requests: int = 0
    seconds: float = 0.0
    kinds: Counter = field(default_factory=Counter)
    lost: list[str] = field(
        default_factory=list
    )  # no answer, or a server error, for a request sent
    mismatched: list[str] = field(default_factory=list)  # an answer that is not this request's
    rss_kib: list[int] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _Client:
    """One soak client: a keep-alive connection for the ordinary requests, fresh ones for the rest."""

    def __init__(
        self, host: str, port: int, stats: SoakStats, lock: threading.Lock, rng: random.Random
    ):
        self.host, self.port, self.stats, self.lock, self.rng = host, port, stats, lock, rng
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _record(self, kind: str, lost: str | None = None, mismatch: str | None = None) -> None:
        with self.lock:
            self.stats.requests += 1
            self.stats.kinds[kind] += 1
            if lost:
                self.stats.lost.append(f"{kind}: {lost}")
            if mismatch:
                self.stats.mismatched.append(f"{kind}: {mismatch}")

    def _exchange(self, data: bytes) -> Answer | None:
        """Send on the keep-alive connection (a new one if the server closed it); the answer or None."""
        for _attempt in range(2):
            if self.sock is None:
                self.sock = socket.create_connection((self.host, self.port), timeout=10)
                fresh = True
            else:
                fresh = False
            try:
                self.sock.sendall(data)
                answers, closed = read_answers(self.sock, want=1)
            except OSError:
                answers, closed = [], True
            if closed:
                self.close()
            if answers:
                if answers[0].headers.get("connection", "").lower() == "close":
                    self.close()
                return answers[0]
            if fresh:
                return None  # a new connection that got no answer: lost
            # A kept-alive connection the server had closed before our bytes arrived: a client
            # retries that on a new connection (nothing was read, as the empty answer shows).
        return None

    def one(self) -> None:
        roll = self.rng.random()
        if roll < 0.55:
            self.json_request()
        elif roll < 0.65:
            self.get_item()
        elif roll < 0.72:
            self.sync_request()
        elif roll < 0.82:
            self.bad_body()
        elif roll < 0.91:
            self.abandoned_stream()
        else:
            self.slow_client()

    def json_request(self) -> None:
        y, rid = self.rng.randrange(10**9), f"soak-{next_id()}"
        body = json.dumps({"y": y, "name": rid}).encode()
        answer = self._exchange(_soak_post(rid, body))
        self._check(
            "json",
            answer,
            200,
            lambda a: (
                a.json() == {"y": y, "ratio": 1.5, "name": rid, "flag": False}
                and a.headers.get("x-request-id") == rid
            ),
        )

    def get_item(self) -> None:
        item = next_id()
        answer = self._exchange(probe_request(item))
        self._check("get", answer, 200, lambda a: is_probe_answer(a, item))

    def sync_request(self) -> None:
        item, name = next_id(), f"n{self.rng.randrange(10**9)}"
        body = json.dumps({"name": name}).encode()
        data = _req(
            "PUT",
            f"/items/{item}",
            ["Host: soak", "Content-Type: application/json", f"Content-Length: {len(body)}"],
            body,
        )
        answer = self._exchange(data)
        self._check(
            "sync",
            answer,
            200,
            lambda a: (
                isinstance(a.json(), dict)
                and a.json().get("item_id") == item
                and a.json().get("name") == name
            ),
        )

    def bad_body(self) -> None:
        rid = f"bad-{next_id()}"
        body = self.rng.choice(
            [b'{"y": ', b'{"y": "not a number"}', b"[1, 2", b"\xff\xfe", b'{"z": 1}']
        )
        answer = self._exchange(_soak_post(rid, body))
        self._check(
            "bad-body",
            answer,
            None,
            lambda a: a.status in (400, 422) and a.headers.get("x-request-id") == rid,
        )

    def abandoned_stream(self) -> None:
        """Start a long stream on its own connection, read its first bytes, and walk away."""
        try:
            with socket.create_connection((self.host, self.port), timeout=10) as sock:
                sock.sendall(_req("GET", "/stream?count=200&delay=0.01", ["Host: soak"]))
                sock.settimeout(ANSWER_TIMEOUT)
                first = sock.recv(4096)
        except OSError as exc:
            self._record("abandoned-stream", lost=repr(exc))
            return
        if not first.startswith(b"HTTP/1.1 200"):
            self._record("abandoned-stream", mismatch=repr(first[:120]))
        else:
            self._record("abandoned-stream")

    def slow_client(self) -> None:
        """A POST whose head and body arrive in pieces, a pause between them."""
        y = self.rng.randrange(10**9)
        body = json.dumps({"y": y}).encode()
        data = _req(
            "POST",
            "/scalars",
            ["Host: soak", "Content-Type: application/json", f"Content-Length: {len(body)}"],
            body,
        )
        pieces = [data[:20], data[20 : len(data) - 5], data[len(data) - 5 :]]
        try:
            with socket.create_connection((self.host, self.port), timeout=10) as sock:
                for piece in pieces:
                    sock.sendall(piece)
                    time.sleep(0.15)
                answers, _ = read_answers(sock, want=1)
        except OSError as exc:
            self._record("slow", lost=repr(exc))
            return
        self._check(
            "slow",
            answers[0] if answers else None,
            200,
            lambda a: isinstance(a.json(), dict) and a.json().get("y") == y,
        )

    def _check(self, kind: str, answer: Answer | None, status: int | None, matches) -> None:
        if answer is None:
            self._record(kind, lost="no answer")
        elif answer.status >= 500:
            self._record(kind, lost=f"{answer.status} {answer.body[:120]!r}")
        elif (status is not None and answer.status != status) or not matches(answer):
            self._record(kind, mismatch=f"{answer.status} {answer.body[:160]!r}")
        else:
            self._record(kind)


def soak(
    host: str, port: int, pid: int | None, seconds: float, clients: int = 6, seed: int = 1
) -> SoakStats:
    """Mixed traffic from `clients` threads for `seconds`; RSS sampled once a second when `pid` is given."""
    stats, lock = SoakStats(), threading.Lock()
    stop = threading.Event()

    def run(index: int) -> None:
        client = _Client(host, port, stats, lock, random.Random(seed * 1000 + index))
        try:
            while not stop.is_set():
                client.one()
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    if pid is not None:
        stats.rss_kib.append(rss_kib(pid))
    while time.monotonic() - started < seconds:
        stop.wait(min(1.0, max(0.0, seconds - (time.monotonic() - started))))
        if pid is not None:
            stats.rss_kib.append(rss_kib(pid))
    stop.set()
    for thread in threads:
        thread.join(60)
    stats.seconds = time.monotonic() - started
    if pid is not None:
        stats.rss_kib.append(rss_kib(pid))
    return stats


# --- back to baseline -------------------------------------------------------------------------


def metric(host: str, port: int, name: str) -> float:
    """One unlabelled sample from the worker's /metrics (FLASH_METRICS=1)."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers, _ = read_answers(sock, want=1)
    for line in answers[0].body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


@dataclass
class Footprint:
    threads: int
    fds: int
    in_flight: float
    slots: float
    pending: float

    def __str__(self) -> str:
        return (
            f"threads {self.threads}, fds {self.fds}, in flight {self.in_flight:g}, "
            f"slots in use {self.slots:g}, pending {self.pending:g}"
        )


def footprint(host: str, port: int, pid: int) -> Footprint:
    # Read the process first: the /metrics request's own connection is then not counted.
    threads = len(os.listdir(f"/proc/{pid}/task"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return Footprint(
        threads,
        fds,
        metric(host, port, "flash_requests_in_flight"),
        metric(host, port, "flash_handler_slots_in_use"),
        metric(host, port, "flash_requests_pending"),
    )


def warm_up(host: str, port: int, sync_threads: int) -> None:
    """One request of each kind the soak sends, and `sync_threads` `def` handlers at once: what the
    worker creates lazily (the handler pool's threads among it) exists before the baseline."""
    client = _Client(host, port, SoakStats(), threading.Lock(), random.Random(0))
    for method in (
        client.json_request,
        client.get_item,
        client.sync_request,
        client.bad_body,
        client.abandoned_stream,
        client.slow_client,
    ):
        method()
    client.close()
    body = b'{"seconds": 0.3}'
    data = _req(
        "POST",
        "/slow-sync",
        [
            "Host: x",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ],
        body,
    )
    socks = [socket.create_connection((host, port), timeout=10) for _ in range(sync_threads)]
    for sock in socks:
        sock.sendall(data)
    for sock in socks:
        read_answers(sock, want=1)
        sock.close()


def back_to_baseline(
    host: str, port: int, pid: int, baseline: Footprint, timeout: float = 30.0
) -> tuple[bool, Footprint]:
    """Wait until nothing is in flight, no slot is taken, nothing waits, and the thread and file
    descriptor counts are back at (or below) the baseline; (whether that happened, last reading)."""
    deadline = time.monotonic() + timeout
    while True:
        now = footprint(host, port, pid)
        if (
            now.in_flight == 0
            and now.slots == 0
            and now.pending == 0
            and now.threads <= baseline.threads
            and now.fds <= baseline.fds
        ):
            return True, now
        if time.monotonic() > deadline:
            return False, now
        time.sleep(0.1)

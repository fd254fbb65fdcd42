"""The /docs page (runtime/docs.html) in headless Chromium: it lists every operation of the spec,
escapes what the spec says, shows a failed spec fetch, loads nothing from another host, and its
"Try it" forms call the operations (driven over the Chrome DevTools protocol)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from support import ROOT, Worker

DOCS_HTML = ROOT / "runtime" / "docs.html"
KINDS_APP = ROOT / "tests" / "apps" / "kinds"
DOCS_APP = ROOT / "tests" / "docs_app"
# Screenshots to look at (gitignored); DOCS_SCREENSHOTS puts them elsewhere.
SCREENSHOTS = Path(os.environ.get("DOCS_SCREENSHOTS") or ROOT / "tests" / "artifacts" / "docs")
CHROMIUM = next(
    (
        path
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (path := shutil.which(name))
    ),
    None,
)
# Every host but 127.0.0.1 resolves to nothing: a page that reached out would show it.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is missing on CI: run tests/setup_chromium.sh")
        pytest.skip("chromium is not installed (tests/setup_chromium.sh installs it)")
    return CHROMIUM


def remove_profile(path: str) -> None:
    """Remove a Chromium profile; its helper processes may still be writing to it for a moment."""
    for _ in range(20):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.25)


def run_chromium(
    binary: str, url: str, *args: str, budget_ms: int = 5000
) -> subprocess.CompletedProcess:
    """One headless Chromium run with a fresh profile, e.g. `--dump-dom` or `--screenshot=...`."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                *args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        remove_profile(profile)


def dump_dom(binary: str, url: str) -> Dom:
    result = run_chromium(binary, url, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    return Dom(result.stdout)


class Dom(HTMLParser):
    """The elements of a dumped page, each as (tag, attributes, text inside it)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.html = html
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        element = {
            "tag": tag,
            "attrs": dict(attrs),
            "text": "",
            "within": [id(e) for e in self._open],
        }
        self.elements.append(element)
        if tag not in ("input", "meta", "br", "img", "link", "hr"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def find(self, tag: str | None = None, **attrs: str) -> list[dict]:
        return [
            e
            for e in self.elements
            if (tag is None or e["tag"] == tag)
            and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def inside(self, container: dict, tag: str | None = None, **attrs: str) -> list[dict]:
        return [e for e in self.find(tag, **attrs) if id(container) in e["within"]]

    def one(self, tag: str | None = None, **attrs: str) -> dict:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


def spec_operations(spec: dict) -> set[tuple[str, str, str]]:
    return {
        (method, path, op["operationId"])
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    }


def dom_operations(dom: Dom) -> set[tuple[str, str, str]]:
    return {
        (e["attrs"]["data-method"], e["attrs"]["data-path"], e["attrs"]["data-operation-id"])
        for e in dom.find("details")
        if "data-operation-id" in e["attrs"]
    }


# --- the file itself -------------------------------------------------------------------------------


def test_page_loads_nothing_from_elsewhere_and_never_parses_html_strings():
    text = DOCS_HTML.read_text()
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I)
    assert not re.search(r"<(img|iframe|object|embed)\b|<script[^>]+src=|@import", text, re.I)
    assert re.findall(r"<link\b[^>]*>", text) == [
        '<link rel="icon" href="data:,">'
    ]  # no /favicon.ico request
    assert not re.search(
        r"\burl\(|\bimport\(|new (Worker|EventSource|WebSocket)\b", text
    )  # CSS url(), dynamic loads
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", text)
    assert "new URL(\"openapi.json\", location.href)" in text


def test_runtime_serves_the_page_verbatim(core_worker):
    response = httpx.get(core_worker.url + "/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == DOCS_HTML.read_bytes()


# --- rendering (--dump-dom, --screenshot) against the runtime --------------------------------------


def test_dom_lists_every_operation_of_the_runtime_spec(core_worker, chromium):
    spec = httpx.get(core_worker.url + "/openapi.json").json()
    dom = dump_dom(chromium, core_worker.url + "/docs")
    status = dom.one(id="status")
    assert status["attrs"]["data-state"] == "ready", status["text"]
    assert status["text"] == f"{len(spec_operations(spec))} operations"
    assert dom_operations(dom) == spec_operations(spec)
    assert dom.one("h1")["text"] == spec["info"]["title"]
    assert spec["info"]["version"] in dom.one(id="version")["text"]
    for path, item in spec["paths"].items():
        for op in item.values():
            card = dom.one("details", data_operation_id=op["operationId"])
            # The summary is Markdown: its `code` spans are shown without the backticks.
            assert op["summary"].replace("`", "") in card["text"] and path in card["text"]
            rows = {
                e["attrs"]["data-status"]: e["text"]
                for e in dom.inside(card, "tr")
                if "data-status" in e["attrs"]
            }
            assert rows.keys() == op["responses"].keys()
            assert all(
                response["description"] in rows[code] for code, response in op["responses"].items()
            )
            params = {
                e["attrs"]["data-param"]
                for e in dom.inside(card, "tr")
                if "data-param" in e["attrs"]
            }
            assert params == {p["name"] for p in op["parameters"]}
            inputs = {
                e["attrs"]["name"]
                for e in dom.inside(card)
                if e["tag"] in ("input", "select") and "name" in e["attrs"]
            }
            assert {f"{p['in']}:{p['name']}" for p in op["parameters"]} <= inputs
            assert bool(dom.inside(card, "pre", **{"class": "schema"})) == ("requestBody" in op)
    # The prefilled body of /scalars comes from its schema's required fields and defaults.
    textarea = dom.inside(dom.one("details", data_operation_id="scalars"), "textarea")[0]
    assert json.loads(textarea["text"]) == {"y": 0, "ratio": 1.5, "name": "anon", "flag": False}


def test_screenshot_shows_a_styled_page(core_worker, chromium):
    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / "core_app.png"
    target.unlink(missing_ok=True)
    result = run_chromium(
        chromium, core_worker.url + "/docs", f"--screenshot={target}", "--window-size=1280,1400"
    )
    assert result.returncode == 0 and target.is_file(), result.stderr[-2000:]
    with Image.open(target) as image:
        assert image.size == (1280, 1400)
        colors = {color for _, color in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    # The badges' own colours are on the page (GET green, POST blue, DELETE red): the CSS applied.
    assert {(0x1F, 0x7A, 0x4D), (0x1F, 0x5F, 0xA8), (0xB3, 0x26, 0x1E)} <= colors
    assert len(colors) > 50  # text was drawn, not one flat colour


# --- a hand-written spec: escaping, $ref resolution, multipart, a failed fetch --------------------

HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'
SAMPLE_SPEC = {
    "openapi": "3.1.0",
    "info": {
        "title": f"Sample {HOSTILE}",
        "version": "2.0",
        "description": f"**Bold** [bad](javascript:alert(1)) [data](data:text/html,x) [in page](#op-grow_tree) {HOSTILE}",
    },
    "paths": {
        "/trees/{tree_id}": {
            "parameters": [{"name": "tree_id", "in": "path", "schema": {"type": "integer"}}],
            "post": {
                "operationId": "grow_tree",
                "summary": f"Grow {HOSTILE}",
                "description": "Line one\nLine two",
                "parameters": [
                    {
                        "name": "tree_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    {"name": HOSTILE, "in": "query", "schema": {"type": "integer"}},
                    {
                        "name": "loop",
                        "in": "query",
                        "schema": {"$ref": "#/components/schemas/Loop"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Node"}}
                    },
                },
                "responses": {
                    "201": {"description": f"Created {HOSTILE}"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/photos": {
            "post": {
                "operationId": "upload_photo",
                "requestBody": {
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["photo"],
                                "properties": {
                                    "photo": {"type": "string", "format": "binary"},
                                    "kind": {"enum": ["raw", "jpeg"]},
                                    "note": {"type": "string", "default": "n"},
                                    "extras": {
                                        "type": "array",
                                        "items": {
                                            "type": "string",
                                            "contentMediaType": "image/png",
                                        },
                                    },
                                },
                            }
                        }
                    }
                },
                "responses": {"200": {"description": "ok"}},
            }
        },
    },
    "components": {
        "schemas": {
            "Node": {
                "type": "object",
                "required": ["name", "shape"],
                "properties": {
                    "name": {"type": "string", "examples": ["oak"]},
                    "shape": {"$ref": "#/components/schemas/Shape"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                    "when": {"type": "string", "format": "date-time"},
                },
            },
            "Shape": {"enum": ["round", "tall"]},
            "Loop": {"$ref": "#/components/schemas/Loop"},
        },
        "responses": {"NotFound": {"description": "No such tree"}},
    },
}


@pytest.fixture(scope="module")
def sample_site():
    """A plain HTTP server with the page at /docs and /sub/docs, and specs good and bad beside them."""
    page = DOCS_HTML.read_bytes()
    routes = {
        "/docs": (200, "text/html; charset=utf-8", page),
        "/openapi.json": (200, "application/json", json.dumps(SAMPLE_SPEC).encode()),
        "/sub/docs": (200, "text/html; charset=utf-8", page),
        "/sub/openapi.json": (
            200,
            "application/json",
            json.dumps({**SAMPLE_SPEC, "info": {"title": "Sub"}}).encode(),
        ),
        "/down/docs": (200, "text/html; charset=utf-8", page),
        "/down/openapi.json": (503, "application/json", b'{"detail":"down"}'),
        "/garbled/docs": (200, "text/html; charset=utf-8", page),
        "/garbled/openapi.json": (200, "application/json", b"{not json"),
    }
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            status, media, body = routes.get(
                self.path.split("?")[0], (404, "text/plain", b"not found")
            )
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_spec_text_is_escaped_and_refs_resolved(sample_site, chromium):
    url, _ = sample_site
    dom = dump_dom(chromium, url + "/docs")
    assert dom.one(id="status")["attrs"]["data-state"] == "ready"
    assert dom_operations(dom) == spec_operations(SAMPLE_SPEC)
    assert not dom.find("img") and not any("onerror" in e["attrs"] for e in dom.elements)
    assert dom.one("h1")["text"] == f"Sample {HOSTILE}"  # shown as text
    assert dom.one("title")["text"] == f"Sample {HOSTILE} - API docs"  # the script in it never ran
    intro = dom.one(id="intro")
    assert [e["text"] for e in dom.inside(intro, "strong")] == ["Bold"]
    assert [e["attrs"]["href"] for e in dom.inside(intro, "a")] == [
        "#op-grow_tree"
    ]  # no javascript: or data: link
    assert "[bad](javascript:alert(1))" in intro["text"] and HOSTILE in intro["text"]
    grow = dom.one("details", data_operation_id="grow_tree")
    assert f"Grow {HOSTILE}" in grow["text"] and "Line one\nLine two" in grow["text"]
    assert (
        "No such tree" in grow["text"] and f"Created {HOSTILE}" in grow["text"]
    )  # a $ref'd response
    outline = [e["text"] for e in dom.find("pre") if e["attrs"].get("class") == "schema"][0]
    assert "shape*: \"round\" | \"tall\"" in outline and "Node (recursive)" in outline
    body = json.loads([e for e in dom.find("textarea")][0]["text"])
    assert body == {
        "name": "oak",
        "shape": "round",
        "children": [],
        "when": "1970-01-01T00:00:00.000Z",
    }
    # The operation's own tree_id replaces the path item's; a $ref that points at itself is shown, not followed.
    assert [
        e["attrs"]["placeholder"]
        for e in dom.find("input")
        if e["attrs"].get("name") == "path:tree_id"
    ] == ["string (uuid)"]
    assert dom.find("input", name="query:loop")
    upload = [e for e in dom.find("input") if e["attrs"].get("name") == "form:photo"]
    assert upload and upload[0]["attrs"]["type"] == "file"
    assert dom.one("select", name="form:kind")
    assert dom.one("input", name="form:extras")["attrs"].keys() >= {"type", "multiple"}
    assert [e for e in dom.find("input") if e["attrs"].get("name") == "form:note"][0]["attrs"][
        "value"
    ] == "n"


def test_spec_is_fetched_relative_to_the_page(sample_site, chromium):
    url, requested = sample_site
    dom = dump_dom(chromium, url + "/sub/docs")
    assert dom.one("h1")["text"] == "Sub"
    assert "/sub/openapi.json" in requested


@pytest.mark.parametrize("prefix, message", [("down", "503"), ("garbled", "JSON")])
def test_a_failed_spec_fetch_is_shown(sample_site, chromium, prefix, message):
    url, _ = sample_site
    dom = dump_dom(chromium, f"{url}/{prefix}/docs")
    status = dom.one(id="status")
    assert status["attrs"]["data-state"] == "error"
    assert f"/{prefix}/openapi.json" in status["text"] and message in status["text"]
    assert not dom_operations(dom)


# --- Try it, over the DevTools protocol --------------------------------------------------------------


class Browser:
    """Headless Chromium driven over the DevTools protocol; remembers every URL the page requested."""

    def __init__(self, binary: str):
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()
        self.profile = tempfile.mkdtemp(prefix="chromium-cdp-")
        self.proc = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "--window-size=1280,1400",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = self._devtools_port()
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(t for t in targets if t["type"] == "page")
            self.ws = self.stack.enter_context(
                connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
            )
        except BaseException:
            self.close()
            raise
        self.next_id = 0
        self.requests: list[str] = []
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("DOM.enable")
        self.call("Runtime.enable")

    def _devtools_port(self) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker.is_file() and (text := marker.read_text().split()):
                return int(text[0])
            assert self.proc.poll() is None, f"chromium exited with {self.proc.returncode}"
            time.sleep(0.05)
        raise AssertionError("chromium never opened its DevTools port")

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def js(self, expression: str) -> object:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := self.js(expression):
                return value
            time.sleep(0.05)
        raise AssertionError(f"never true: {expression}")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(
            "document.readyState === 'complete' && document.getElementById('status')"
            " && document.getElementById('status').dataset.state !== 'loading'"
        )

    def screenshot(self, target: Path, full_page: bool = False) -> None:
        import base64

        target.parent.mkdir(parents=True, exist_ok=True)
        options: dict = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            options["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], 6000),
                "scale": 1,
            }
        data = self.call("Page.captureScreenshot", **options)["data"]
        target.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.stack.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        remove_profile(self.profile)


@pytest.fixture
def browser(chromium):
    driver = Browser(chromium)
    try:
        yield driver
    finally:
        driver.close()


def card(operation_id: str) -> str:
    return f"document.getElementById({json.dumps('op-' + operation_id)})"


def try_it(
    browser: Browser,
    operation_id: str,
    fields: dict[str, str] | None = None,
    body: str | None = None,
) -> dict:
    """Open the card, type into its form like a user, press Send, and read what the page shows."""
    fields_json, body_json = json.dumps(fields or {}), json.dumps(body)
    browser.js(f"""(() => {{
        const card = {card(operation_id)};
        card.open = true;
        const form = card.querySelector('form');
        form.querySelector('.result').removeAttribute('data-status');
        for (const [name, value] of Object.entries({fields_json})) {{
            const control = form.elements[name];
            control.value = value;
            control.dispatchEvent(new Event('input', {{bubbles: true}}));
        }}
        if ({body_json} !== null) form.elements.body.value = {body_json};
        form.querySelector('button').click();
    }})()""")
    browser.wait_for(f"{card(operation_id)}.querySelector('.result').dataset.status")
    return browser.js(f"""(() => {{
        const result = {card(operation_id)}.querySelector('.result');
        const pre = result.querySelector('pre');
        return {{status: result.dataset.status, text: result.textContent,
                 requestId: (result.querySelector('.request-id') || {{}}).textContent,
                 body: pre ? pre.textContent : null}};
    }})()""")


def assert_only_loopback(browser: Browser) -> None:
    assert browser.requests, "the DevTools protocol saw no request at all"
    for url in browser.requests:
        assert url.startswith(("http://127.0.0.1:", "data:", "blob:", "about:")), url
        assert not url.endswith("/favicon.ico"), url  # the page names its (empty) icon


def set_files(browser: Browser, operation_id: str, path: Path) -> list[str]:
    """Choose `path` in every file input of the card, as a user would; the inputs' field names."""
    names = []
    count = browser.js(f"{card(operation_id)}.querySelectorAll('input[type=file]').length")
    for index in range(count):
        expression = f"{card(operation_id)}.querySelectorAll('input[type=file]')[{index}]"
        node = browser.call("Runtime.evaluate", expression=expression)["result"]
        browser.call("DOM.setFileInputFiles", files=[str(path)], objectId=node["objectId"])
        names.append(browser.js(f"{expression}.name").removeprefix("form:"))
    return names


def direct_call(
    base: str,
    method: str,
    path: str,
    fields: dict[str, str],
    prefilled: dict,
    files: dict[str, Path],
) -> httpx.Response:
    """The request the form describes, sent by httpx: what the page shows must match its answer."""
    for name, value in fields.items():
        if name.startswith("path:"):
            path = path.replace("{" + name[5:] + "}", value)
    query = {name[6:]: value for name, value in fields.items() if name.startswith("query:")}
    kwargs: dict = {"params": query, "timeout": 30}
    if files:
        kwargs["files"] = {name: (file.name, file.read_bytes()) for name, file in files.items()}
        kwargs["data"] = {name: value for name, value in prefilled["form"].items() if value != ""}
    elif prefilled["body"] is not None:
        kwargs["content"] = prefilled["body"].encode()
        kwargs["headers"] = {"Content-Type": "application/json"}
    return httpx.request(method.upper(), base + path, **kwargs)


def has_untyped_field(spec: dict, op: dict) -> bool:
    for media in op.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        if any(prop == {} for prop in schema.get("properties", {}).values()):
            return True
    return False


def same_shape(shown: str, expected: httpx.Response) -> bool:
    """The page's body matches the direct answer up to values that change per call (threads, clocks)."""
    media = expected.headers.get("content-type", "")
    if not expected.content:
        return shown == "(empty body)"
    if media.startswith("application/json") and not media.startswith("application/jsonl"):
        page, direct = json.loads(shown), expected.json()
        return (
            page.keys() == direct.keys() if isinstance(direct, dict) else type(page) is type(direct)
        )
    if media.startswith("text/") or "json" in media:
        return len(shown.splitlines()) == len(expected.text.splitlines())
    return shown.startswith("(") and media in shown  # a binary body is summarised


def test_try_it_calls_every_operation_with_its_prefilled_form(core_worker, browser, tmp_path):
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"\x00some bytes\xff")
    spec = httpx.get(core_worker.url + "/openapi.json").json()
    browser.open(core_worker.url + "/docs")
    assert browser.js("document.getElementById('status').dataset.state") == "ready"
    typed = {
        "path:item_id": "42",
        "query:q": "hello",
    }  # required and without a default: a user types them
    for path, item in spec["paths"].items():
        for method, op in item.items():
            names = {f"{p['in']}:{p['name']}" for p in op["parameters"]}
            fields = {k: v for k, v in typed.items() if k in names}
            files = {name: upload for name in set_files(browser, op["operationId"], upload)}
            prefilled = browser.js(f"""(() => {{
                const form = {card(op["operationId"])}.querySelector('form');
                return {{body: form.elements.body ? form.elements.body.value : null,
                         form: Object.fromEntries([...form.querySelectorAll("[name^='form:']:not([type=file])")]
                                                  .map((c) => [c.name.slice(5), c.value]))}};
            }})()""")
            shown = try_it(browser, op["operationId"], fields)
            assert shown["status"] != "error", (op["operationId"], shown)
            if not has_untyped_field(
                spec, op
            ):  # `{}` describes nothing an example could be built from
                assert shown["status"] != "422", (op["operationId"], prefilled, shown)
            expected = direct_call(core_worker.url, method, path, fields, prefilled, files)
            assert shown["status"] == str(expected.status_code), (
                op["operationId"],
                shown,
                expected.text,
            )
            assert re.fullmatch(r"X-Request-ID: [0-9a-f]{32}", shown["requestId"]), shown
            assert same_shape(shown["body"], expected), (
                op["operationId"],
                shown["body"],
                expected.text,
            )
    assert_only_loopback(browser)


def test_try_it_shows_status_request_id_and_pretty_body(core_worker, browser):
    browser.open(core_worker.url + "/docs")
    shown = try_it(browser, "get_item", {"path:item_id": "7", "query:verbose": "true"})
    assert shown["status"] == "200"
    assert json.loads(shown["body"]) == {"item_id": 7, "verbose": True}
    assert shown["body"] == json.dumps({"item_id": 7, "verbose": True}, indent=2)
    request_id = shown["requestId"].split(": ")[1]
    access = core_worker.wait_log(
        lambda r: r.get("event") == "request" and r.get("request_id") == request_id
    )
    assert access["path"] == "/items/7", access
    browser.js(f"{card('get_item')}.scrollIntoView()")
    browser.screenshot(SCREENSHOTS / "core_app_try_it.png")

    shown = try_it(browser, "search", {"query:q": "x y", "query:tags": "a, b", "query:limit": "3"})
    assert json.loads(shown["body"]) == {"q": "x y", "limit": 3, "tags": ["a", "b"], "exact": None}

    shown = try_it(browser, "scalars")  # the prefilled example, as is
    assert json.loads(shown["body"]) == {"y": 0, "ratio": 1.5, "name": "anon", "flag": False}
    shown = try_it(browser, "structured")
    assert shown["status"] == "200", shown

    shown = try_it(browser, "scalars", body='{"y": "not a number"}')
    assert shown["status"] == "422" and json.loads(shown["body"])["detail"], shown

    sent = len(browser.requests)
    shown = try_it(browser, "scalars", body="{broken")
    assert shown["status"] == "error" and "Error:" in shown["text"]
    shown = try_it(browser, "get_item", {"path:item_id": ""})
    assert shown["status"] == "error" and "item_id" in shown["text"]
    assert len(browser.requests) == sent  # neither was sent

    browser.js(
        "const f = document.getElementById('filter'); f.value = 'items/'; f.dispatchEvent(new Event('input'))"
    )
    visible = browser.js(
        "[...document.querySelectorAll('details.op')].filter((c) => !c.hidden).map((c) => c.id)"
    )
    assert sorted(visible) == ["op-delete_item", "op-get_item", "op-patch_item", "op-update_item"]
    assert_only_loopback(browser)


def test_try_it_uploads_a_file_as_multipart(browser, tmp_path):
    photo = tmp_path / "photo.bin"
    photo.write_bytes(b"hello file")
    with Worker(KINDS_APP) as worker:
        worker.wait_ready()
        browser.open(worker.url + "/docs")
        assert (
            browser.js("document.querySelector('#op-upload input[type=file]').name") == "form:file"
        )
        node = browser.call(
            "Runtime.evaluate", expression="document.querySelector('#op-upload input[type=file]')"
        )
        browser.call(
            "DOM.setFileInputFiles", files=[str(photo)], objectId=node["result"]["objectId"]
        )
        shown = try_it(browser, "upload", {"form:name": "snap", "form:count": "2"})
        assert shown["status"] == "200", shown
        assert json.loads(shown["body"]) == {
            "size": 10,
            "name": "snap",
            "count": 2,
            "head": "hello",
        }
        browser.js(f"{card('upload')}.scrollIntoView()")
        browser.screenshot(SCREENSHOTS / "kinds_upload.png")
    assert_only_loopback(browser)


# --- what the page shows of a documented app (tests/docs_app), and how it looks ------------------------


@pytest.fixture(scope="module")
def docs_worker():
    with Worker(DOCS_APP) as worker:
        yield worker.wait_ready()


def test_title_is_the_apps_name_and_build(docs_worker, browser):
    browser.open(docs_worker.url + "/docs")
    assert browser.js("document.querySelector('h1').textContent") == "catalog"
    assert browser.js("document.title") == "catalog - API docs"
    assert (
        browser.js("document.getElementById('version').textContent")
        == "built 2026-11-28 01:18 UTC OpenAPI 3.1.0"
    )


def test_docstrings_are_rendered_as_markdown(docs_worker, browser):
    browser.open(docs_worker.url + "/docs")
    shown = browser.js(f"""(() => {{
        const body = {card('list_products')}.querySelector('.description');
        return {{items: [...body.querySelectorAll('ul > li')].map((li) => li.textContent),
                 code: [...body.querySelectorAll('code')].map((c) => c.textContent),
                 links: [...body.querySelectorAll('a')].map((a) => [a.textContent, a.getAttribute('href')]),
                 first: body.firstElementChild.textContent}};
    }})()""")
    assert shown["items"] == [
        "offset=0&limit=20 is the first page",
        "offset=20&limit=20 the second",
    ]
    assert {"sort", "next_offset", "null"} <= set(shown["code"])
    assert shown["links"] == [["the catalogue guide", "https://example.com/guide"]]
    assert not shown["first"].startswith(
        "List products"
    )  # the summary is in the title bar, not repeated
    summary = browser.js(f"{card('get_product')}.querySelector('summary .summary').innerText")
    assert summary == "Look a product up by its SKU."
    assert browser.js(f"{card('get_product')}.querySelector('summary strong').textContent") == "SKU"
    text = browser.js(f"{card('get_product')}.querySelector('.description').textContent")
    assert "<b>HTML stays text</b>" in text and not browser.js(
        f"{card('get_product')}.querySelector('.description b')"
    )
    fenced = browser.js(
        f"{card('create_product')}.querySelector('.description pre code').textContent"
    )
    assert json.loads(fenced) == {"product": {"sku": "ABC-1234", "name": "Mug", "price": 8.5}}


def test_parameters_show_descriptions_and_constraints_where_they_are(docs_worker, browser):
    browser.open(docs_worker.url + "/docs")

    def row(operation_id: str, kind: str, name: str) -> dict:
        return browser.js(f"""(() => {{
            const tr = {card(operation_id)}.querySelector('tr[data-{kind}={json.dumps(name)}]');
            return {{chips: [...tr.querySelectorAll('.chip')].map((c) => c.textContent),
                     description: tr.cells[2] ? tr.cells[2].textContent : null, strong: [...tr.querySelectorAll('strong')].map((s) => s.textContent)}};
        }})()""")

    limit = row("list_products", "param", "limit")
    assert limit["chips"] == ["≥ 1", "≤ 100", "default: 20"]
    assert limit["description"] == "Items per page, at most 100." and limit["strong"] == [
        "at most 100"
    ]
    assert row("list_products", "param", "sort")["chips"] == ['default: "name"']
    sku = row("get_product", "param", "sku")
    assert (
        sku["chips"] == [r"pattern /^[A-Z]{3}-\d{4}$/"]
        and sku["description"] == "Stock keeping unit, e.g. ABC-1234."
    )
    coats = row("paint", "field", "coats")
    assert coats["chips"] == ["≥ 1", "≤ 5", "multiple of 1", "default: 1"]
    assert coats["description"] is None  # no field of the body has one: no empty column
    assert (
        row("create_product", "field", "dry_run")["description"] == "Validate only; store nothing."
    )
    assert browser.js(
        f"{card('paint')}.querySelector('tr[data-field=colour] td.type').textContent"
    ).startswith("Colour")


def test_response_schema_of_each_operation(docs_worker, browser):
    browser.open(docs_worker.url + "/docs")
    page = browser.js(
        f"{card('list_products')}.querySelector('details.response[data-status=\"200\"]')"
        ".querySelector('pre.response-schema').textContent"
    )
    assert (
        page.startswith("Page {")
        and "items*: array<Product {" in page
        and "next_offset: integer | null = null" in page
    )
    assert browser.js(
        f"{card('list_products')}.querySelector('details.response[data-status=\"200\"]').open"
    )
    assert not browser.js(
        f"{card('list_products')}.querySelector('details.response[data-status=\"422\"]').open"
    )
    assert not browser.js(
        f"{card('remove_product')}.querySelector('details.response[data-status=\"200\"]')"
    )  # -> None


def curl_of(browser: Browser, operation_id: str) -> str:
    return browser.js(f"{card(operation_id)}.querySelector('pre.curl-command').textContent")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_command_is_the_request_the_form_describes(docs_worker, browser):
    browser.open(docs_worker.url + "/docs")
    base = docs_worker.url
    body = {"product": {"sku": "ABC-1234", "name": "Mug", "price": 8.5}, "dry_run": True}
    browser.js(f"""(() => {{
        const form = {card('create_product')}.querySelector('form');
        form.elements.body.value = {json.dumps(json.dumps(body))};
        form.elements.body.dispatchEvent(new Event('input', {{bubbles: true}}));
    }})()""")
    command = curl_of(browser, "create_product")
    assert command == (
        f"curl -X POST '{base}/products' \\\n  -H 'Content-Type: application/json' \\\n"
        f"  -d '{json.dumps(body, separators=(',', ':'))}'"
    )
    ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert json.loads(ran.stdout) == {**body["product"], "colour": "red", "tags": []}

    try_it(browser, "get_product", {"path:sku": "ABC-0001", "query:currency": "USD"})
    command = curl_of(browser, "get_product")
    assert command == f"curl '{base}/products/ABC-0001?currency=USD'"
    assert (
        json.loads(
            subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=30
            ).stdout
        )["name"]
        == "Mug"
    )

    browser.js(f"""(() => {{
        const form = {card('create_product')}.querySelector('form');
        form.elements.body.value = '{{"product": {{"name": "it\\'s"}}}}';
        form.elements.body.dispatchEvent(new Event('input', {{bubbles: true}}));
    }})()""")
    quoted = curl_of(browser, "create_product").splitlines()[-1].strip()
    assert (
        quoted == """-d '{"product":{"name":"it'\\''s"}}'"""
    )  # a quote in the body survives the shell


@pytest.mark.parametrize("width, height, device", [(1280, 860, "desktop"), (390, 844, "phone")])
def test_screenshots_at_desktop_and_phone_width(docs_worker, browser, width, height, device):
    from PIL import Image

    browser.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=device == "phone",
    )
    browser.open(docs_worker.url + "/docs")
    index = SCREENSHOTS / f"index-{device}.png"
    browser.screenshot(index)
    assert browser.js("document.documentElement.scrollWidth") <= width  # nothing runs off the side
    browser.js("location.hash = '#op-list_products'")
    browser.wait_for(f"{card('list_products')}.open")
    assert browser.js("document.documentElement.scrollWidth") <= width
    operation = SCREENSHOTS / f"operation-{device}.png"
    browser.screenshot(operation, full_page=True)
    browser.js("location.hash = '#op-create_product'")
    browser.wait_for(f"{card('create_product')}.open")
    with_body = SCREENSHOTS / f"operation-body-{device}.png"
    browser.screenshot(with_body)
    for target in (index, operation, with_body):
        with Image.open(target) as image:
            assert image.size[0] == width
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # text was drawn
    assert_only_loopback(browser)

"""The search web page: `python -m training.search --store EMB --serve [--host H --port P]`.

One page (`/`) with a text box, an image to upload, a page (its JSON path) with an optional
panel, and a grid of results: page thumbnails with the matched panel outlined, each linking
to the page rendered with its panels (`/render/ROW.png`) and to its JSON (`/json/ROW`).
Everything is served from here (no CDN, no outside URL), on 127.0.0.1 unless `--host`
says otherwise. Only files the store names are served, addressed by store row.

    GET  /api/search?text=...&kind=panels&k=12     a text
    GET  /api/search?page=PAGE.json[&panel=N]      a page or one of its panels
    GET  /api/search?row=R[&panel=N]               a stored page (the "similar" links)
    POST /api/search?[text=...&]kind=pages         an image (the raw body or multipart)
    GET  /thumb/ROW.jpg  /render/ROW.png[?panel=N]  /json/ROW
"""

from __future__ import annotations

import html
import io
import ipaddress
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .cli import CLIError
from .search import Result, Searcher
from .store import StoreError

MAX_UPLOAD = 30 * 1024 * 1024
"""Largest image a query may upload (bytes); larger ones are answered 413."""
MAX_K = 200
THUMB_SIDE = 320
THUMBS_CACHED = 512
RENDER_SIDE = 1400


class QueryError(ValueError):
    """A query the page cannot answer (answered 400 with the message)."""


class NotFound(LookupError):
    """An address naming no row, panel or route (answered 404 with the message)."""


class Pages:
    """Thumbnails, renders and JSON of the store's pages, by row (thumbnails cached)."""

    def __init__(self, searcher: Searcher, lock: threading.Lock) -> None:
        self.searcher = searcher
        self.lock = lock  # the store is read under the searcher's lock
        self._thumbs: OrderedDict[int, bytes] = OrderedDict()
        self._thumbs_lock = threading.Lock()

    def meta(self, row: int) -> dict[str, Any]:
        """The stored metadata of a row (`NotFound` when the store has no such row)."""
        if not 0 <= row < self.searcher.store.n_pages:
            raise NotFound(f"the store has no row {row}")
        with self.lock:
            return self.searcher.store.page_meta(row)

    def thumb(self, row: int) -> bytes:
        """A JPEG of the page at most `THUMB_SIDE` px (grey when its image is missing)."""
        with self._thumbs_lock:
            if row in self._thumbs:
                self._thumbs.move_to_end(row)
                return self._thumbs[row]
        from dataspec.render import page_image

        image, _, _ = page_image(self._page(self.meta(row)), max_side=THUMB_SIDE)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        data = out.getvalue()
        with self._thumbs_lock:
            self._thumbs[row] = data
            while len(self._thumbs) > THUMBS_CACHED:
                self._thumbs.popitem(last=False)
        return data

    def render(self, row: int, slot: int | None = None) -> bytes:
        """A PNG of the page with its panels, reading order and text drawn on it; the
        panel at reading position `slot` outlined thicker."""
        from PIL import ImageDraw

        from dataspec.render import render_page

        meta = self.meta(row)
        rtl = bool(self.searcher.store.attrs.get("fingerprint", {}).get("rtl", False))
        image = render_page(self._page(meta), rtl=rtl, max_side=RENDER_SIDE)
        if slot is not None:
            panel = next((p for p in meta["panels"] if p["slot"] == slot), None)
            if panel is None:
                raise NotFound(f"row {row} has no panel {slot}")
            scale = image.width / max(1, meta["width"])
            x, y, w, h = (v * scale for v in panel["box"])
            line = max(4, round(max(image.size) / 120))
            draw = ImageDraw.Draw(image)
            around = (x - line - 2, y - line - 2, x + w + line + 2, y + h + line + 2)
            draw.rectangle(around, outline=(255, 255, 255), width=line + 2)  # outside the box
            draw.rectangle(around, outline=(255, 45, 85), width=line)
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()

    def json_bytes(self, row: int) -> bytes:
        """The page's JSON file as it is on disk."""
        return Path(self.meta(row)["json_path"]).read_bytes()

    @staticmethod
    def _page(meta: dict[str, Any]) -> Any:
        """The page file (strict, else lenient) with the image the store resolved."""
        import dataspec
        from dataspec.io import load

        try:
            page = load(meta["json_path"])
        except dataspec.DataSpecError:
            page = load(meta["json_path"], lenient=True)
        return page.model_copy(update={"page_image_path": meta["image_path"]})


def _int(params: dict[str, list[str]], name: str) -> int | None:
    value = (params.get(name) or [""])[0].strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise QueryError(f"{name} must be a whole number, got {value!r}") from None


def answer(searcher: Searcher, params: dict[str, list[str]], image: bytes | None) -> list[Result]:
    """The results of one query of the page (`QueryError` for a bad one)."""
    text = (params.get("text") or [""])[0].strip()
    page = (params.get("page") or [""])[0].strip()
    kind = (params.get("kind") or [""])[0] or None
    if kind not in (None, "pages", "panels"):
        raise QueryError(f"kind must be pages or panels, got {kind!r}")
    k = _int(params, "k")
    k = 12 if k is None else k
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be 1 to {MAX_K}, got {k}")
    row, panel = _int(params, "row"), _int(params, "panel")
    if row is not None:
        if page:
            raise QueryError("give a page or a row, not both")
        if not 0 <= row < searcher.store.n_pages:
            raise QueryError(f"the store has no row {row}")
        page = searcher.store.page_meta(row)["json_path"]
    if panel is not None and not page:
        raise QueryError("a panel number needs a page (the page the panel is on)")
    if page:
        if text or image:
            raise QueryError("a page query takes no text or image: one query at a time")
        if panel is not None:
            if kind == "pages":
                raise QueryError("a panel finds panels: choose panels, or clear the panel")
            return searcher.similar_panels(page, panel, k)
        if kind == "panels":
            raise QueryError("a page alone finds pages: give a panel number to find panels")
        return searcher.similar_pages(page, k)
    if image:
        fd, path = tempfile.mkstemp(prefix="search-query-", suffix=".img")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(image)
            if text:
                return searcher.by_text_and_image(text, path, k, kind or "panels")
            return searcher.by_image(path, k, kind or "pages")
        except CLIError as exc:
            message = str(exc).replace(f"image {path}", "the uploaded image")
            raise QueryError(message.replace(path, "the upload")) from None
        finally:
            os.unlink(path)
    if text:
        return searcher.by_text(text, k, kind or "panels")
    raise QueryError("give a text, an image or a page to search with")


def upload(body: bytes, content_type: str) -> bytes | None:
    """The image of a POST body: the body itself, or a multipart form's first file."""
    if not content_type.lower().startswith("multipart/"):
        return body or None
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    for part in message.iter_parts() if message.is_multipart() else ():
        data = part.get_payload(decode=True)
        if part.get_filename() is not None and isinstance(data, bytes) and data:
            return data
    return None


def card(result: Result) -> dict[str, Any]:
    """A result as the page shows it: `Result.to_dict` plus its short name and URLs."""
    out = result.to_dict()
    out["name"] = "/".join(Path(result.json_path).parts[-3:])
    out["thumb"] = f"/thumb/{result.row}.jpg"
    panel = "" if result.slot is None else f"?panel={result.slot}"
    out["render"] = f"/render/{result.row}.png{panel}"
    out["json"] = f"/json/{result.row}"
    return out


def _row(name: str, suffix: str) -> int:
    stem = name[: len(name) - len(suffix)] if name.endswith(suffix) else ""
    if not (stem.isascii() and stem.isdigit()):
        raise NotFound(f"no such address: {name}")
    return int(stem)


def make_server(searcher: Searcher, host: str, port: int) -> ThreadingHTTPServer:
    """The page's HTTP server, bound and not yet serving (port 0: any free port)."""
    lock = threading.Lock()  # the searcher loads its model and indexes lazily
    pages = Pages(searcher, lock)
    count = searcher.store.n_pages
    index = (
        PAGE.replace("{{STORE}}", html.escape(str(searcher.store.path)))
        .replace("{{COUNT}}", f"{count:,} page{'s' if count != 1 else ''}")
        .encode()
    )

    class Handler(BaseHTTPRequestHandler):
        server_version = "dataspec-search"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, data: bytes, kind: str, cache: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "max-age=600" if cache else "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _json(self, status: int, value: Any) -> None:
            data = json.dumps(value, ensure_ascii=False).encode()
            self._send(status, data, "application/json")

        def _search(self, params: dict[str, list[str]], image: bytes | None) -> None:
            started = time.perf_counter()
            with lock:
                results = answer(searcher, params, image)
            ms = round(1000 * (time.perf_counter() - started), 1)
            self._json(HTTPStatus.OK, {"results": [card(r) for r in results], "ms": ms})

        def _route(self, url: Any, params: dict[str, list[str]]) -> None:
            parts = url.path.strip("/").split("/")
            if url.path == "/":
                self._send(HTTPStatus.OK, index, "text/html; charset=utf-8")
            elif url.path == "/api/search":
                self._search(params, None)
            elif len(parts) == 2 and parts[0] == "thumb":
                self._send(HTTPStatus.OK, pages.thumb(_row(parts[1], ".jpg")), "image/jpeg", True)
            elif len(parts) == 2 and parts[0] == "render":
                data = pages.render(_row(parts[1], ".png"), _int(params, "panel"))
                self._send(HTTPStatus.OK, data, "image/png", True)
            elif len(parts) == 2 and parts[0] == "json":
                self._send(HTTPStatus.OK, pages.json_bytes(_row(parts[1], "")), "application/json")
            else:
                raise NotFound(f"no such address: {url.path}")

        def _answer(self, work: Callable[[], None]) -> None:
            try:
                work()
            except (BrokenPipeError, ConnectionResetError):  # the browser went away
                self.close_connection = True
            except NotFound as exc:
                self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
            except (QueryError, CLIError, StoreError, ValueError) as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except Exception as exc:  # answered, not a dropped connection
                self._json(
                    HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"}
                )

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            self._answer(lambda: self._route(url, parse_qs(url.query)))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/api/search":
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such address: {url.path}"})
                return
            length = self.headers.get("Content-Length", "0").strip()
            if not length.isdigit():
                self.close_connection = True
                self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "give a Content-Length"})
                return
            if int(length) > MAX_UPLOAD:
                self.close_connection = True  # the body is never read
                error = f"the upload is over {MAX_UPLOAD // (1024 * 1024)} MB"
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": error})
                return
            body = self.rfile.read(int(length))
            kind = self.headers.get("Content-Type", "")
            self._answer(lambda: self._search(parse_qs(url.query), upload(body, kind)))

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    return Server((host, port), Handler)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    searcher: Searcher, host: str, port: int, *, ready: Callable[[str], None] | None = None
) -> int:
    """Serve the page until Ctrl-C (then 0); `ready` is called with its address."""
    try:
        server = make_server(searcher, host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{server.server_address[1]}/"
    if not is_loopback(host):
        print(f"warning: listening on {host}: the page is reachable from other machines")
    print(f"serving {searcher.store.path} at {address} (Ctrl-C stops)", flush=True)
    if ready is not None:
        ready(address)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
    return 0


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dataspec search</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f3f3f1;color:#222}
header{background:#20232a;color:#eee;padding:9px 16px;display:flex;gap:14px;align-items:baseline}
header h1{font-size:17px;margin:0} header small{color:#aab;overflow-wrap:anywhere}
form{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:end;padding:10px 16px;
background:#fff;border-bottom:1px solid #ddd}
label{display:flex;flex-direction:column;font-size:12px;color:#555;gap:2px}
input,select,button{font:inherit;padding:4px 6px}
#q-text{width:22em} #q-page{width:18em} #q-panel,#q-k{width:4.5em} #q-image{width:15em}
button{background:#2a6fdb;color:#fff;border:0;border-radius:4px;padding:6px 18px;cursor:pointer}
#status{padding:6px 16px 0;color:#555} #error{padding:6px 16px 0;color:#b00020;font-weight:600}
#error:empty{display:none}
#results{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px;
padding:10px 16px 24px}
.result{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;font-size:12px;
min-width:0;display:flex;flex-direction:column}
.frame{position:relative;display:block;line-height:0}
.frame img{width:100%;height:auto;display:block;background:#ccc;border-radius:3px}
.panel-box{position:absolute;border:3px solid #ff2d55;box-shadow:0 0 0 1px #fff,
inset 0 0 0 1px #fff;box-sizing:border-box;pointer-events:none}
.meta{display:flex;justify-content:space-between;margin-top:4px}
.rank{font-weight:700} .score{color:#777;font-variant-numeric:tabular-nums}
.name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:#333}
.name span{color:#888}
.lines{color:#555;font-style:italic;display:-webkit-box;-webkit-line-clamp:2;
-webkit-box-orient:vertical;overflow:hidden}
.links{margin-top:auto;padding-top:2px} .links a{margin-right:10px;color:#2a6fdb}
</style></head><body>
<header><h1>Search the embeddings</h1><small>{{STORE}} &middot; {{COUNT}}</small></header>
<form id="q" novalidate>
<label>text <input id="q-text" placeholder="words a panel says"></label>
<label>image <input id="q-image" type="file" accept="image/*"></label>
<label>page (JSON path) <input id="q-page" placeholder="pages/book/0001.json"></label>
<label>panel <input id="q-panel" type="number" min="0"></label>
<label>find <select id="q-kind"><option value="">auto</option>
<option value="pages">pages</option><option value="panels">panels</option></select></label>
<label>k <input id="q-k" type="number" min="1" max="200" value="12"></label>
<button id="q-go" type="submit">Search</button>
</form>
<div id="error"></div>
<div id="status">Type a text, pick an image or name a page.</div>
<div id="results"></div>
<script>
const $ = (id) => document.getElementById(id);
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function link(text, href) {
  const a = el("a", "", text); a.href = href; a.target = "_blank"; a.rel = "noopener";
  return a;
}
function card(r) {
  const c = el("div", "result");
  c.dataset.rank = r.rank; c.dataset.jsonPath = r.json_path; c.dataset.row = r.row;
  if (r.slot !== null) c.dataset.slot = r.slot;
  const frame = link("", r.render); frame.className = "frame";
  const img = el("img"); img.src = r.thumb; img.alt = r.name; img.loading = "lazy";
  img.width = 180; img.height = Math.round(180 * r.height / Math.max(1, r.width));
  frame.appendChild(img);
  if (r.box && r.width && r.height) {
    const [x, y, w, h] = r.box, b = el("div", "panel-box");
    b.style.left = (100 * x / r.width) + "%"; b.style.top = (100 * y / r.height) + "%";
    b.style.width = (100 * w / r.width) + "%"; b.style.height = (100 * h / r.height) + "%";
    frame.appendChild(b);
  }
  c.appendChild(frame);
  const meta = el("div", "meta");
  const where = r.slot === null ? "page" : "panel " + r.slot;
  meta.append(el("span", "rank", "#" + r.rank + " " + where),
              el("span", "score", r.score.toFixed(3)));
  c.appendChild(meta);
  const cut = r.name.lastIndexOf("/"), name = el("div", "name"); name.title = r.json_path;
  name.append(el("b", "", r.name.slice(cut + 1)), " ", el("span", "", r.name.slice(0, cut + 1)));
  c.appendChild(name);
  if (r.lines) {
    const t = el("div", "lines", "\\u201c" + r.lines + "\\u201d"); t.title = r.lines;
    c.appendChild(t);
  }
  const links = el("div", "links");
  const sim = el("a", "", "similar"); sim.href = "#";
  sim.onclick = (ev) => {
    ev.preventDefault();
    const q = {row: r.row}; if (r.slot !== null) q.panel = r.slot;
    run(q, null, "similar to " + r.name + (r.slot === null ? "" : " panel " + r.slot));
  };
  links.append(link("page", r.render), link("JSON", r.json), sim);
  c.appendChild(links);
  return c;
}
async function run(q, image, what) {
  $("error").textContent = ""; $("status").textContent = "searching\\u2026";
  $("results").replaceChildren();
  q.k = $("q-k").value || 12;
  const url = "/api/search?" + new URLSearchParams(q).toString();
  try {
    const resp = await fetch(url, image ? {method: "POST", body: image} : {});
    const data = await resp.json();
    if (!resp.ok) { $("error").textContent = data.error; $("status").textContent = ""; return; }
    $("results").replaceChildren(...data.results.map(card));
    const n = data.results.length;
    $("status").textContent = n + " result" + (n === 1 ? "" : "s") + " in " + data.ms + " ms"
      + (what ? " \\u2014 " + what : "");
  } catch (err) { $("error").textContent = String(err); $("status").textContent = ""; }
}
$("q").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = {}, text = $("q-text").value.trim(), page = $("q-page").value.trim();
  const file = $("q-image").files[0] || null, kind = $("q-kind").value;
  if (page) { q.page = page; if ($("q-panel").value !== "") q.panel = $("q-panel").value; }
  if (text) q.text = text;
  if (kind) q.kind = kind;
  run(q, page ? null : file, "");
});
</script></body></html>
"""

"""The search web page (`training.search --serve`, `training.search_web`) on a real store
of a tiny trained model: its HTTP answers, and a real headless Chromium typing a query,
uploading an image, with a screenshot looked at.

The browser test needs Debian's Chromium and its driver (`/usr/bin/chromium`,
`/usr/bin/chromedriver`) and selenium; it is skipped without them unless
`DATASPEC_REQUIRE_BROWSER=1` (then it fails). `DATASPEC_SCREENSHOT=PATH` keeps a copy of
its screenshot there (the README's).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from training.embed import main as embed_main
from training.search import Searcher
from training.search_web import MAX_UPLOAD, is_loopback, make_server
from training.store import Store
from training.synthetic import make_corpus
from training.train_cli import main as train_main

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@dataclass(frozen=True)
class Site:
    """A served store: its folder, the page's base URL, a panel with text of its own."""

    store: Path
    url: str
    row: int
    slot: int
    lines: str
    json_path: str


@pytest.fixture(scope="module")
def emb(tmp_path_factory: pytest.TempPathFactory, tiny: list[str]) -> Path:
    """A store of 12 synthetic pages embedded by a 1-epoch tiny model."""
    root = tmp_path_factory.mktemp("search_web")
    corpus = make_corpus(root / "corpus", pages=12, seed=4, width=400, height=600, series=2)
    where = ["--json_dir", str(corpus.pages_dir), "--image_root", str(corpus.image_root)]
    run, out = root / "run", root / "emb"
    argv = [*where, "--output_dir", str(run), "--batch_size", "4", "--epochs", "1", *tiny]
    assert train_main([*argv, "--val_fraction", "0.25"]) == 0
    argv = ["--checkpoint", str(run / "best.pt"), *where, "--output_dir", str(out)]
    assert embed_main([*argv, "--no_progress"]) == 0
    return out


@pytest.fixture(scope="module")
def site(emb: Path) -> Iterator[Site]:
    """The page served on a free localhost port in a thread."""
    store = Store(emb)
    metas = [store.page_meta(r) for r in range(store.n_pages)]
    counts = Counter(p["lines"] for m in metas for p in m["panels"])
    # the longest text of its own short enough for the text encoder to read whole
    row, slot, lines = max(
        (
            (m["row"], p["slot"], p["lines"])
            for m in metas
            for p in m["panels"]
            if p["text"] == "present" and counts[p["lines"]] == 1 and 10 <= len(p["lines"]) <= 40
        ),
        key=lambda t: len(t[2]),
    )
    server = make_server(Searcher(emb), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        yield Site(emb, url, row, slot, lines, metas[row]["json_path"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _get(url: str, data: bytes | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET (or a POST of `data`)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def _search(site: Site, query: str, data: bytes | None = None) -> list[dict[str, Any]]:
    status, kind, body = _get(f"{site.url}/api/search?{query}", data)
    assert status == 200 and kind == "application/json", (status, body)
    answer = json.loads(body)
    assert isinstance(answer["ms"], float | int) and answer["ms"] >= 0
    results: list[dict[str, Any]] = answer["results"]
    return results


# --------------------------------------------------------------------------- HTTP


def test_text_query_returns_the_panel_first(site: Site) -> None:
    results = _search(site, urllib.parse.urlencode({"text": site.lines}))
    assert len(results) == 12 and [r["rank"] for r in results] == list(range(1, 13))
    top = results[0]
    assert (top["row"], top["slot"], top["kind"]) == (site.row, site.slot, "panel")
    assert top["lines"] == site.lines and top["json_path"] == site.json_path
    assert len(top["box"]) == 4 and top["score"] > 0.99
    assert top["thumb"] == f"/thumb/{site.row}.jpg" and top["json"] == f"/json/{site.row}"
    assert top["render"] == f"/render/{site.row}.png?panel={site.slot}"
    pages = _search(site, urllib.parse.urlencode({"text": site.lines, "kind": "pages", "k": 5}))
    assert len(pages) == 5 and pages[0]["row"] == site.row
    assert len({r["row"] for r in pages}) == len(pages)


def test_similar_by_row_and_by_page(site: Site) -> None:
    pages = _search(site, f"row={site.row}&k=3")
    assert len(pages) == 3 and site.row not in [r["row"] for r in pages]
    assert all(r["kind"] == "page" and r["box"] is None for r in pages)
    panels = _search(site, f"row={site.row}&panel={site.slot}&k=3")
    assert len(panels) == 3 and all(r["kind"] == "panel" and r["box"] for r in panels)
    assert (site.row, site.slot) not in [(r["row"], r["slot"]) for r in panels]
    assert _search(site, urllib.parse.urlencode({"page": site.json_path, "k": 3})) == pages


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("", "give a text, an image or a page"),
        ("text=%20", "give a text"),
        ("text=boom&k=x", "k must be a whole number"),
        ("text=boom&k=0", "k must be 1 to 200"),
        ("text=boom&k=1000", "k must be 1 to 200"),
        ("text=boom&kind=books", "kind must be pages or panels"),
        ("row=9999", "the store has no row 9999"),
        ("row=0&panel=40", "no panel at reading position 40"),
        ("row=0&text=boom", "one query at a time"),
        ("row=0&kind=panels", "give a panel number"),
        ("panel=1", "needs a page"),
        ("page=/nowhere/page.json", "cannot embed the query page"),
    ],
)
def test_bad_queries_answer_400(site: Site, query: str, says: str) -> None:
    status, kind, body = _get(f"{site.url}/api/search?{query}")
    assert status == 400 and kind == "application/json", (status, body)
    assert says in json.loads(body)["error"]


def test_image_query(site: Site) -> None:
    data = Path(Store(site.store).page_meta(site.row)["image_path"]).read_bytes()
    results = _search(site, "k=4", data)
    assert len(results) == 4 and results[0]["row"] == site.row and results[0]["kind"] == "page"
    both = _search(site, urllib.parse.urlencode({"text": site.lines, "k": 3}), data)
    assert both[0]["row"] == site.row and both[0]["kind"] == "panel"
    boundary = "b0undary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{site.url}/api/search?k=2",
        data=form,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        assert json.loads(r.read())["results"][0]["row"] == site.row
    status, _, body = _get(f"{site.url}/api/search?k=2", b"not an image")
    error = json.loads(body)["error"]
    assert status == 400 and "uploaded image" in error
    assert "search-query-" not in error  # the temporary file is not named


def test_an_oversized_upload_answers_413(site: Site) -> None:
    parts = urllib.parse.urlsplit(site.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/search?k=2")
        conn.putheader("Content-Length", str(MAX_UPLOAD + 1))
        conn.endheaders()  # no body is sent: the server must answer without reading it
        response = conn.getresponse()
        assert response.status == 413 and "MB" in json.loads(response.read())["error"]
    finally:
        conn.close()


def test_thumbnails_renders_and_json(site: Site) -> None:
    meta = Store(site.store).page_meta(0)
    status, kind, body = _get(f"{site.url}/thumb/0.jpg")
    assert status == 200 and kind == "image/jpeg"
    with Image.open(io.BytesIO(body)) as im:
        assert im.format == "JPEG" and max(im.size) == 320
        assert abs(im.width / im.height - meta["width"] / meta["height"]) < 0.02
    assert _get(f"{site.url}/thumb/0.jpg")[2] == body  # cached, the same bytes
    status, kind, body = _get(f"{site.url}/json/0")
    assert status == 200 and kind == "application/json"
    assert body == Path(meta["json_path"]).read_bytes()
    renders = []
    for query in ("", f"?panel={meta['panels'][0]['slot']}"):
        status, kind, body = _get(f"{site.url}/render/0.png{query}")
        assert status == 200 and kind == "image/png"
        with Image.open(io.BytesIO(body)) as im:
            assert im.format == "PNG" and im.width == meta["width"]
        renders.append(body)
    assert renders[0] != renders[1]  # the asked panel is outlined


@pytest.mark.parametrize(
    "address",
    [
        "/thumb/9999.jpg",
        "/render/9999.png",
        "/json/9999",
        "/json/-1",
        "/json/..%2F..%2Fetc%2Fpasswd",
        "/json/../../etc/passwd",
        "/thumb/0.png",
        "/render/x.png",
        "/render/0.png?panel=99",
        "/etc/passwd",
        "/api/other",
    ],
)
def test_unknown_addresses_answer_404(site: Site, address: str) -> None:
    status, kind, body = _get(site.url + address)
    assert status == 404 and kind == "application/json", (address, status)
    assert json.loads(body)["error"]
    assert _get(site.url + address, b"x")[0] == 404  # POST: only /api/search


def test_the_page_is_offline(site: Site) -> None:
    status, kind, body = _get(site.url + "/")
    assert status == 200 and kind == "text/html; charset=utf-8"
    page = body.decode()
    ids = ("q-text", "q-image", "q-page", "q-panel", "q-kind", "q-k", "q-go", "results", "error")
    for name in (*ids, "status"):
        assert f'id="{name}"' in page, name
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""["'(=]\s*//""", page)  # no protocol-relative URL either
    for url in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page):
        assert not re.match(r"[a-z][a-z0-9+.-]*:|//", url, re.I), url
    assert "<link" not in page and "@import" not in page


def test_loopback_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_serve_from_the_command_line_stops_on_ctrl_c(emb: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.search", "--store", str(emb), "--serve", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"serving (.+) at (http://127\.0\.0\.1:\d+/) \(Ctrl-C stops\)", line)
        assert match, line
        assert _get(match[2])[0] == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


# --------------------------------------------------------------------------- browser


def _driver(tmp_path: Path) -> Any:
    """A headless Chromium driven by selenium (skip, or fail when it is required)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = f"the browser test needs {', '.join(missing)}"
        if os.environ.get("DATASPEC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (DATASPEC_REQUIRE_BROWSER=1)")
        pytest.skip(f"{reason} (apt-get install chromium chromium-driver; pip install selenium)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1280,1100",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def test_a_query_typed_in_the_browser(site: Site, tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def results() -> list[Any]:
        """The cards of the query just sent (after its answer or error)."""
        WebDriverWait(driver, 20).until(
            lambda d: (
                "results in" in d.find_element(By.ID, "status").text
                or d.find_element(By.ID, "error").text
            )
        )
        assert driver.find_element(By.ID, "error").text == ""
        cards: list[Any] = driver.find_elements(By.CSS_SELECTOR, "#results .result")
        assert cards and cards[0].get_attribute("data-rank") == "1"
        return cards

    try:
        driver.get(site.url + "/")
        driver.find_element(By.ID, "q-text").send_keys(site.lines)
        driver.find_element(By.ID, "q-go").click()
        first = results()[0]
        assert first.get_attribute("data-json-path") == site.json_path
        assert first.get_attribute("data-slot") == str(site.slot)
        box = first.find_element(By.CSS_SELECTOR, ".panel-box")
        assert box.is_displayed() and box.size["width"] > 4 and box.size["height"] > 4
        assert driver.find_element(By.ID, "status").text.startswith("12 results in")
        WebDriverWait(driver, 20).until(
            lambda d: d.execute_script(
                "return [...document.images].every((i) => i.complete && i.naturalWidth > 0)"
            )
        )
        shot = tmp_path / "search_web.png"
        assert driver.save_screenshot(str(shot))
        inner = driver.execute_script(
            "return [innerWidth * devicePixelRatio, innerHeight * devicePixelRatio]"
        )
        with Image.open(shot) as im:
            assert im.format == "PNG" and list(im.size) == [round(v) for v in inner], im.size
            colours = im.convert("RGB").getcolors(1 << 20)
            assert colours is None or len(colours) > 50  # not one flat colour
        if os.environ.get("DATASPEC_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["DATASPEC_SCREENSHOT"])

        # an image query: the uploaded page comes first, as a page (no panel outlined)
        meta = Store(site.store).page_meta(site.row)
        driver.find_element(By.ID, "q-text").clear()
        driver.find_element(By.ID, "q-image").send_keys(meta["image_path"])
        driver.find_element(By.ID, "q-go").click()
        first = results()[0]
        assert first.get_attribute("data-json-path") == site.json_path
        assert first.find_elements(By.CSS_SELECTOR, ".panel-box") == []

        # "similar" on a result: a query by its row, the page itself left out
        first.find_element(By.LINK_TEXT, "similar").click()
        cards = results()
        assert site.json_path not in [c.get_attribute("data-json-path") for c in cards]

        # a bad query shows the server's error in the page
        driver.find_element(By.ID, "q-image").clear()
        driver.find_element(By.ID, "q-k").clear()
        driver.find_element(By.ID, "q-k").send_keys("1000")
        driver.find_element(By.ID, "q-text").send_keys("boom")
        driver.find_element(By.ID, "q-go").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "error").text)
        assert "k must be 1 to 200" in driver.find_element(By.ID, "error").text
        assert driver.find_elements(By.CSS_SELECTOR, ".result") == []
    finally:
        driver.quit()

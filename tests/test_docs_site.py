"""The rendered site (``python tools/docs_site.py build``): it builds, its links resolve, and in a
real browser its formulas are typeset and its figures load.

- ``test_site_builds`` builds the site into a temporary folder with Sphinx and
  MyST-Parser; any Sphinx warning (a link to a missing chapter or heading, a
  missing figure) fails it. Needs the docs extra: ``pip install -e ".[docs]"``.
- ``test_internal_links_resolve`` reads every built page: each local ``href`` and
  ``src`` must name a file of the site and each ``#anchor`` an id on that page;
  no link may still point at a ``.md`` file.
- ``test_pages_in_a_browser`` serves the site on 127.0.0.1 and opens every page
  in headless Chromium (Debian's ``chromium``, or the program named by
  ``$CHROMIUM``), driven over the DevTools protocol through a pipe, with the
  standard library only. On each page it waits for MathJax, then checks that
  every formula was typeset (each ``.math`` element holds MathJax output, no
  MathJax error, and no ``$$``, ``$``, ``\\(`` or ``\\[`` is left in the visible
  text outside code), that every ``<img>`` loaded (``naturalWidth > 0``), and
  that every same-site link answers a HEAD request with 200. Skipped, with the
  reason, when no Chromium is installed.

    python -m pytest tests/test_docs_site.py
"""
import fcntl
import functools
import http.server
import importlib.util
import json
import os
import re
import select
import shutil
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_site", ROOT / "tools" / "docs_site.py")
docs_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_site)

DOCS_EXTRA = ["sphinx", "myst_parser", "furo", "sphinx-mathjax-offline"]
# MyST-Parser 5.2 still uses an attribute that Sphinx 9 deprecates: not ours to fix, and not news
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated. Check CHANGES for Sphinx API")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    missing = [m for m in DOCS_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs the docs extra (pip install -e \".[docs]\"): {', '.join(missing)} not installed")
    out = tmp_path_factory.mktemp("site") / "html"
    try:
        docs_site.build_site(out, quiet=True)
    except SystemExit as exc:
        pytest.fail(f"the site did not build: {exc}")
    return out


def pages(site):
    return sorted(site.glob("*.html"))


def test_site_builds(site):
    names = {p.name for p in pages(site)}
    for chapter in docs_site.chapters():
        assert chapter.stem + ".html" in names
    assert {"index.html", "README.html", "ops.html"} <= names
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()  # MathJax travels with the site


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") in ("canonical",)):
                self.refs.append((tag, attrs[key]))


@functools.lru_cache(maxsize=None)
def _parse(path):
    parser = _Refs()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return parser


def test_internal_links_resolve(site):
    broken, chapter_links = [], 0
    for page in pages(site):
        for tag, ref in _parse(page).refs:
            parts = urlsplit(ref)
            if parts.scheme or parts.netloc:
                continue  # an external link (the site itself needs none: MathJax is local)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if parts.path.endswith(".md"):
                broken.append(f"{page.name}: {ref} still points at Markdown")
            elif not target.is_file():
                broken.append(f"{page.name}: {ref} (no such file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
                broken.append(f"{page.name}: {ref} (no id {parts.fragment!r} there)")
            if tag == "a" and re.match(r"^\d+[a-z]?_\w+\.html$", parts.path) and page.name != "README.html":
                chapter_links += 1
    assert not broken, "\n".join(broken)
    assert chapter_links > 20  # the chapters link to each other, and those links became page links


# --- a headless Chromium over the DevTools protocol ---------------------------------------------

def _chromium():
    for name in [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _high_fd(fd):
    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


class Browser:
    """Chromium started with ``--remote-debugging-pipe``: it reads JSON commands on fd 3 and
    writes answers and events on fd 4, each message ending in a NUL byte."""

    def __init__(self, exe, profile):
        to_chrome_r, self._w = map(_high_fd, os.pipe())
        self._r, from_chrome_w = map(_high_fd, os.pipe())

        def wire():  # in the child, before exec
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        args = [exe, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
                "--window-size=1280,900", "about:blank"]
        self.proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=wire, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf, self._next_id, self.events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)

    def _read(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, session=False, timeout=60, **params):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_event(self, method, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def open(self, url):
        self.events.clear()
        result = self.call("Page.navigate", session=True, url=url)
        assert "errorText" not in result, f"{url}: {result['errorText']}"
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression, timeout=60):
        result = self.call("Runtime.evaluate", session=True, timeout=timeout, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"]["value"]

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._r)
        os.close(self._w)


# runs in the page: wait for MathJax and the images, then report what a reader would see
INSPECT = r"""
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await Promise.all([...document.images].map(img => img.complete ? null :
      new Promise(done => { img.onload = img.onerror = done; })));
  const skip = 'PRE, CODE, SCRIPT, STYLE, NOSCRIPT, TEXTAREA, MJX-CONTAINER, MJX-ASSISTIVE-MML';
  const walker = document.createTreeWalker(document.querySelector('article') || document.body,
                                           NodeFilter.SHOW_TEXT);
  let text = '';
  for (let node = walker.nextNode(); node; node = walker.nextNode())
    if (!node.parentElement.closest(skip)) text += node.nodeValue;
  const maths = [...document.querySelectorAll('.math')];
  const links = [...new Set([...document.querySelectorAll('a[href]')].map(a => a.href)
      .filter(h => h.startsWith(location.origin)).map(h => h.split('#')[0]))];
  const status = await Promise.all(links.map(async h => [h, (await fetch(h, {method: 'HEAD'})).status]));
  return {
    text: text,
    math: maths.length,
    typeset: maths.filter(m => m.querySelector('mjx-container')).length,
    mathErrors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    images: [...document.images].map(img => [img.getAttribute('src'), img.naturalWidth]),
    badLinks: status.filter(([h, s]) => s !== 200),
    links: status.length,
  };
})()
"""


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_pages_in_a_browser(site, served, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium: apt-get install chromium (or set $CHROMIUM)")
    browser = Browser(exe, tmp_path / "profile")
    problems, total_math, total_images = [], 0, 0
    try:
        for page in pages(site):
            browser.open(f"{served}/{page.name}")
            seen = browser.evaluate(INSPECT)
            name = page.name
            for raw in ("$$", "$", "\\(", "\\[", "\\begin{"):
                if raw in seen["text"]:
                    at = seen["text"].index(raw)
                    problems.append(f"{name}: raw {raw!r} in the text: ...{seen['text'][max(0, at - 40):at + 40]}...")
            if seen["typeset"] != seen["math"]:
                problems.append(f"{name}: {seen['math'] - seen['typeset']} of {seen['math']} formulas not typeset")
            if seen["mathErrors"]:
                problems.append(f"{name}: {seen['mathErrors']} MathJax errors")
            problems += [f"{name}: image {src} did not load" for src, width in seen["images"] if not width > 0]
            problems += [f"{name}: link {h} answered {s}" for h, s in seen["badLinks"]]
            total_math += seen["typeset"]
            total_images += sum(1 for src, _ in seen["images"] if "_images/" in src)
    finally:
        browser.close()
    assert not problems, "\n".join(problems)
    # the chapters' figures and formulas are all there (a site that typeset nothing would pass the above)
    figures = sum(len(re.findall(r"!\[[^\]]*\]\(images/", c.read_text(encoding="utf-8")))
                  for c in docs_site.chapters())
    assert total_images >= figures > 0
    assert total_math > 500

"""Layout checks of the toolkit's HTML pages in headless Chromium (leaderboard, curation report).

Headless Chromium will not make a window narrower than 500 px, so a page is shown in an iframe of
the wanted width (its media queries see the iframe's width, as on a phone). A probe script in a
copy of the page measures the layout and posts the verdict to the harness, whose DOM
``--dump-dom`` returns once the page's scripts have run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HARNESS = """<!DOCTYPE html><html><body style="margin:0;background:#888">
<iframe src="{src}" style="border:0;display:block;background:#fff;width:{width}px;height:{height}px"></iframe>
<script>window.addEventListener('message', function(e){{ document.body.setAttribute('data-probe', e.data); }});</script>
</body></html>"""

# An element is clipped when it reaches past the window and no ancestor scrolls it into reach.
PROBE = """<script>
(function(){
  var w = window.innerWidth, bad = [];
  function scrolls(el){
    for (var p = el.parentElement; p; p = p.parentElement){
      var ox = getComputedStyle(p).overflowX;
      if (ox === 'auto' || ox === 'scroll') return true;
    }
    return false;
  }
  if (document.documentElement.scrollWidth > w + 1) bad.push('page ' + document.documentElement.scrollWidth + '>' + w);
  document.querySelectorAll('body *').forEach(function(el){
    var r = el.getBoundingClientRect();
    if (r.width === 0 || r.left < -1000) return;   // hidden, or moved off-screen on purpose (a11y headers)
    if ((r.right > w + 1 || r.left < -1) && !scrolls(el))
      bad.push(el.tagName + '.' + el.className + ':' + (el.getAttribute('data-label') || el.textContent.slice(0, 24)) + ' ' + Math.round(r.right));
  });
  var visible = {};
  SELECTORS.forEach(function(sel){
    visible[sel] = Array.prototype.filter.call(document.querySelectorAll(sel), function(el){
      var r = el.getBoundingClientRect(); return r.width > 0 && r.right <= w + 1 && r.left >= -1; }).length;
  });
  var verdict = JSON.stringify({width: w, bad: bad, visible: visible});
  document.body.setAttribute('data-probe', verdict);
  if (window.parent !== window) window.parent.postMessage(verdict, '*');
})();
</script></body>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("headless Chromium is not installed (apt-get install -y chromium); HTML not rendered")


def run_chromium(exe: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", *args],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def layout(page: Path, width: int, height: int, selectors: tuple[str, ...] = ()) -> dict:
    """{"width", "bad": [clipped elements], "visible": {selector: count fully inside the window}}."""
    exe = chromium()
    probe = page.parent / f".probe-{width}-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", PROBE.replace("SELECTORS", json.dumps(list(selectors)))), encoding="utf-8")
    harness = page.parent / f".harness-{width}-{page.name}"
    harness.write_text(HARNESS.format(src=probe.name, width=width, height=height), encoding="utf-8")
    res = run_chromium(exe, f"--window-size={max(width, 500)},{height}", "--virtual-time-budget=5000", "--dump-dom",
               harness.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r"data-probe=\"([^\"]*)\"", res.stdout)
    assert m, "layout probe did not run"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(page: Path, png: Path, width: int, height: int) -> None:
    exe = chromium()
    view = page.parent / f".view-{width}-{page.name}"
    view.write_text(HARNESS.format(src=page.name, width=width, height=height), encoding="utf-8")
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    res = run_chromium(exe, f"--screenshot={png}", f"--window-size={max(width, 500)},{height}", view.as_uri())
    assert res.returncode == 0 and png.is_file() and png.stat().st_size > 5000, res.stderr[-2000:]

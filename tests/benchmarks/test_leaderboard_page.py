"""The leaderboard page at 1400 px and at 390 px in headless Chromium: nothing wider than the
window, every Date cell inside it, one bar chart with CI whiskers per metric; screenshots are saved
under test-artifacts/ for a person to look at."""

from __future__ import annotations

import re

import pytest

from anytalker.cli import main
from tests.benchmarks.test_leaderboard import ARTIFACTS, _chromium, _run_chromium, results_doc, write

# Headless Chromium will not make a window narrower than 500 px, so the page is shown in an
# iframe of the wanted width (its media queries see the iframe's width, as on a phone).
HARNESS = """<!DOCTYPE html><html><body style="margin:0;background:#888">
<iframe src="{src}" style="border:0;display:block;background:#fff;width:{width}px;height:{height}px"></iframe>
<script>window.addEventListener('message', function(e){{ document.body.setAttribute('data-probe', e.data); }});</script>
</body></html>"""

# Appended to a copy of the page: measures the layout and writes the verdict into the DOM, which
# --dump-dom returns after the scripts ran.
PROBE = """<script>
(function(){
  var w = window.innerWidth, bad = [];
  if (document.documentElement.scrollWidth > w + 1) bad.push('page ' + document.documentElement.scrollWidth + '>' + w);
  document.querySelectorAll('td, th, svg, h1, h2, p').forEach(function(el){
    var r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > w + 1 || r.left < -1) && !(el.tagName === 'TH' && r.left < -1000))
      bad.push(el.tagName + ':' + (el.getAttribute('data-label') || el.textContent.slice(0, 20)) + ' ' + Math.round(r.right));
  });
  var dates = Array.prototype.filter.call(document.querySelectorAll('td.date'), function(td){
    var r = td.getBoundingClientRect(); return r.width > 0 && r.right <= w + 1; }).length;
  var verdict = JSON.stringify({width: w, bad: bad, dates_visible: dates});
  document.body.setAttribute('data-probe', verdict);
  if (window.parent !== window) window.parent.postMessage(verdict, '*');
})();
</script></body>"""


@pytest.fixture(scope="module")
def board_page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page")
    docs = [results_doc("alpha-long-model-name-v2 (ours, 14B)", 0.58, 3.1, sync_d=7.2),
            results_doc("beta", 0.41, 2.4, sync_d=8.9),
            results_doc("gamma", 0.66, 3.6, sync_d=6.9)]
    # one result with a single scored item: no CI (null), drawn without whiskers
    for m in docs[1]["metrics"].values():
        m.update(n_scored=1, ci_low=None, ci_high=None)
    files = [write(tmp, f"{i}.json", d) for i, d in enumerate(docs)]
    html = tmp / "leaderboard.html"
    assert main(["bench", "leaderboard", *map(str, files), "--output", str(tmp / "lb.json"), "--html", str(html)]) == 0
    return html


def test_page_has_a_chart_with_whiskers_per_metric(board_page):
    page = board_page.read_text(encoding="utf-8")
    assert len(re.findall(r'<figure class="chart" data-metric="', page)) == 3
    assert page.count('class="bar-row"') == 9
    # 2 results with a CI x 3 metrics, 3 whisker lines each; the n = 1 result has none
    assert page.count('class="whisker"') == 2 * 3 * 3
    assert "no CI (n&lt;2)" in page


@pytest.mark.parametrize("width,height", [(1400, 900), (390, 2200)])
def test_page_fits_the_window_in_chromium(board_page, width, height):
    import json

    exe = _chromium()
    window = f"--window-size={max(width, 500)},{height}"
    probe = board_page.parent / f"probe-{width}.html"
    probe.write_text(board_page.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    harness = board_page.parent / f"harness-{width}.html"
    harness.write_text(HARNESS.format(src=probe.name, width=width, height=height), encoding="utf-8")
    res = _run_chromium(exe, window, "--virtual-time-budget=5000", "--dump-dom", harness.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r"data-probe=\"([^\"]*)\"", res.stdout)
    assert m, "layout probe did not run"
    verdict = json.loads(m.group(1).replace("&quot;", '"'))
    assert verdict["width"] == width
    assert verdict["bad"] == [], f"clipped at {width}px: {verdict['bad'][:10]}"
    assert verdict["dates_visible"] == 3, "the Date column is not visible"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"leaderboard-{width}.png"
    shot.unlink(missing_ok=True)
    view = board_page.parent / f"view-{width}.html"
    view.write_text(HARNESS.format(src=board_page.name, width=width, height=height), encoding="utf-8")
    res = _run_chromium(exe, f"--screenshot={shot}", window, view.as_uri())
    assert res.returncode == 0 and shot.is_file() and shot.stat().st_size > 5000, res.stderr[-2000:]

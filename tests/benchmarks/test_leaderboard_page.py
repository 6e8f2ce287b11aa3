"""The leaderboard page at 1400 px and at 390 px in headless Chromium: nothing wider than the
window, every Date cell inside it, one bar chart with CI whiskers per metric; screenshots are saved
under test-artifacts/ for a person to look at."""

from __future__ import annotations

import re

import pytest

from anytalker.cli import main
from tests import pagecheck
from tests.benchmarks.test_leaderboard import ARTIFACTS, results_doc, write

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
    verdict = pagecheck.layout(board_page, width, height, ("td.date", "figure.chart svg"))
    assert verdict["width"] == width
    assert verdict["bad"] == [], f"clipped at {width}px: {verdict['bad'][:10]}"
    assert verdict["visible"]["td.date"] == 3, "the Date column is not visible"
    assert verdict["visible"]["figure.chart svg"] == 3
    pagecheck.screenshot(board_page, ARTIFACTS / f"leaderboard-{width}.png", width, height)


def test_page_templates_are_package_data():
    """The HTML templates ship in the wheel: pyproject's package-data globs match every one."""
    import fnmatch
    import tomllib

    from tests.conftest import REPO

    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    templates = sorted(REPO.glob("*/templates/*"))
    assert templates
    for t in templates:
        package, rel = t.relative_to(REPO).parts[0], "/".join(t.relative_to(REPO).parts[1:])
        assert any(fnmatch.fnmatch(rel, g) for g in data.get(package, [])), f"{t} is not package data"

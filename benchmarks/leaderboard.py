"""Rank results documents into a leaderboard (JSON + one self-contained, sortable HTML page).

Results are ranked together only when they are comparable: same benchmark and version, same
manifest and scoring file, same item set and interval reading, and for every metric the same
metric version, backend and backend version. Otherwise the leaderboard refuses (default) and says
which field differs, or, with ``on_mismatch="group"``, ranks each comparable group separately.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from anytalker import __version__
from anytalker.errors import UserError
from benchmarks.scoring import RESULTS_FORMAT

LEADERBOARD_FORMAT = "anytalker-leaderboard/1"


@dataclass
class LoadedResult:
    path: Path
    doc: dict

    @property
    def label(self) -> str:
        return self.path.name


def load_results(paths: list[str | os.PathLike]) -> list[LoadedResult]:
    out = []
    for p in paths:
        p = Path(p)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{p}: results file not found; pass files written by `anytalker bench score`") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{p}: not valid JSON ({e}); re-run `anytalker bench score`") from None
        if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
            raise UserError(f"{p}: not a results document (format {doc.get('format') if isinstance(doc, dict) else None!r},"
                            f" expected {RESULTS_FORMAT!r}); pass files written by `anytalker bench score`")
        for key in ("benchmark", "version", "metrics", "submission"):
            if key not in doc:
                raise UserError(f"{p}: results document lacks {key!r}; re-run `anytalker bench score`")
        out.append(LoadedResult(p, doc))
    if not out:
        raise UserError("no results files given; pass one or more results.json")
    return out


def compatibility_key(doc: dict) -> dict:
    """Everything that must be equal for two results to be ranked together."""
    return {
        "benchmark": doc.get("benchmark"),
        "version": doc.get("version"),
        "manifest_sha256": doc.get("manifest_sha256"),
        "scoring_sha256": doc.get("scoring_sha256"),
        "interval_format": doc.get("interval_format"),
        "items": sorted(doc.get("items") or []),
        "metrics": {name: {"version": m.get("version"), "backend": m.get("backend"),
                           "backend_version": m.get("backend_version")}
                    for name, m in sorted((doc.get("metrics") or {}).items())},
    }


def describe_differences(a: LoadedResult, b: LoadedResult) -> list[str]:
    """Readable reasons why ``b`` cannot be ranked with ``a``."""
    ka, kb = compatibility_key(a.doc), compatibility_key(b.doc)
    out = []
    for field in ("benchmark", "version", "manifest_sha256", "scoring_sha256", "interval_format"):
        if ka[field] != kb[field]:
            out.append(f"{field}: {a.label} has {ka[field]!r}, {b.label} has {kb[field]!r}")
    if ka["items"] != kb["items"]:
        only_a = sorted(set(ka["items"]) - set(kb["items"]))
        only_b = sorted(set(kb["items"]) - set(ka["items"]))
        out.append(f"items: scored on different item sets ({len(ka['items'])} vs {len(kb['items'])}; only in "
                   f"{a.label}: {', '.join(only_a[:5]) or '-'}; only in {b.label}: {', '.join(only_b[:5]) or '-'})")
    ma, mb = ka["metrics"], kb["metrics"]
    for name in sorted(set(ma) | set(mb)):
        if name not in ma or name not in mb:
            has, lacks = (a.label, b.label) if name in ma else (b.label, a.label)
            out.append(f"metric {name}: present in {has}, missing in {lacks}")
            continue
        for attr in ("version", "backend", "backend_version"):
            if ma[name][attr] != mb[name][attr]:
                out.append(f"metric {name} {attr}: {a.label} has {ma[name][attr]!r}, {b.label} has {mb[name][attr]!r}")
    return out


def group_results(results: list[LoadedResult]) -> list[list[LoadedResult]]:
    groups: list[tuple[str, list[LoadedResult]]] = []
    for r in results:
        key = json.dumps(compatibility_key(r.doc), sort_keys=True)
        for k, members in groups:
            if k == key:
                members.append(r)
                break
        else:
            groups.append((key, [r]))
    return [m for _, m in groups]


def _sort_value(doc: dict, metric: str) -> float | None:
    m = (doc.get("metrics") or {}).get(metric)
    if not m or m.get("value") is None:
        return None
    v = float(m["value"])
    return None if math.isnan(v) else v


def rank_group(group: list[LoadedResult]) -> list[dict]:
    """Rows ordered best first by the primary metric, then the tie-breakers; a result without a
    value for a ranking metric goes after those with one. Equal keys share a rank."""
    doc0 = group[0].doc
    ranking = doc0.get("ranking") or {}
    metric_names = list((doc0.get("metrics") or {}).keys())
    order = [n for n in [ranking.get("primary"), *(ranking.get("tie_break") or [])] if n in metric_names]
    if not order and metric_names:
        order = [metric_names[0]]
    higher = {n: bool(doc0["metrics"][n].get("higher_is_better", True)) for n in metric_names}

    def key(r: LoadedResult):
        k = []
        for n in order:
            v = _sort_value(r.doc, n)
            k.append((1, 0.0) if v is None else (0, -v if higher[n] else v))
        return k

    ordered = sorted(group, key=lambda r: (key(r), r.doc["submission"].get("model") or "", r.label))
    rows = []
    prev_key, prev_rank = None, 0
    for i, r in enumerate(ordered, start=1):
        k = key(r)
        rank = prev_rank if k == prev_key else i
        prev_key, prev_rank = k, rank
        sub = r.doc["submission"]
        rows.append({
            "rank": rank,
            "model": sub.get("model"),
            "revision": sub.get("revision"),
            "results_file": r.label,
            "submission_sha256": sub.get("sha256"),
            "date": r.doc.get("date"),
            "toolkit_version": (r.doc.get("toolkit") or {}).get("version"),
            "metrics": {n: {f: r.doc["metrics"][n].get(f) for f in
                            ("value", "ci_low", "ci_high", "ci_level", "ci_method", "n_scored", "n_failed")}
                        for n in metric_names},
        })
    return rows


def build_leaderboard(results: list[LoadedResult], on_mismatch: str = "refuse") -> dict:
    groups = group_results(results)
    if len(groups) > 1 and on_mismatch == "refuse":
        ref = groups[0][0]
        lines = []
        for g in groups[1:]:
            lines.extend(describe_differences(ref, g[0]))
        raise UserError(f"{groups[1][0].path}: cannot be ranked with {ref.path}: " + "; ".join(lines)
                        + "; re-score with the same benchmark version, item set and pinned metrics, "
                          "or pass --group to rank each comparable set separately")
    if on_mismatch not in ("refuse", "group"):
        raise ValueError(on_mismatch)
    out_groups = []
    for g in groups:
        doc0 = g[0].doc
        key = compatibility_key(doc0)
        out_groups.append({
            "benchmark": key["benchmark"],
            "version": key["version"],
            "manifest_sha256": key["manifest_sha256"],
            "scoring_sha256": key["scoring_sha256"],
            "interval_format": key["interval_format"],
            "n_items": len(key["items"]),
            "items": key["items"],
            "ranking": doc0.get("ranking"),
            "metrics": [{"name": n, **key["metrics"][n],
                         "higher_is_better": bool(doc0["metrics"][n].get("higher_is_better", True))}
                        for n in doc0["metrics"]],
            "differs_from_first_group": describe_differences(groups[0][0], g[0]) if g is not groups[0] else [],
            "rows": rank_group(g),
        })
    return {"format": LEADERBOARD_FORMAT, "toolkit": {"name": "anytalker-toolkit", "version": __version__},
            "groups": out_groups}


# --- HTML --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1b1f24}
h1{font-size:1.4em;margin:0 0 4px}
h2{font-size:1.1em;margin:28px 0 4px}
p.meta{color:#57606a;font-size:.85em;margin:2px 0}
table{border-collapse:collapse;margin-top:10px;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:6px 10px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;cursor:pointer;user-select:none}
th.text,td.text{text-align:left}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafbfc}
td .ci{color:#57606a;font-size:.85em}
td.na{color:#8c959f}
"""

# sorts the table whose header was clicked; "#sort=<column>:<asc|desc>" in the URL pre-sorts the
# first table (lets a headless browser check the sorting without clicks)
_JS = """
(function(){
  function cellValue(td, type){
    var raw = td.getAttribute('data-value');
    if(type === 'number'){ return (raw === null || raw === '') ? null : parseFloat(raw); }
    return (raw === null ? td.textContent : raw).toLowerCase();
  }
  function sortTable(table, col, dir){
    var th = table.tHead.rows[0].cells[col];
    var type = th.getAttribute('data-type');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = cellValue(a.cells[col], type), y = cellValue(b.cells[col], type);
      if(x === null && y === null) return 0;
      if(x === null) return 1;           // missing values always last
      if(y === null) return -1;
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return dir === 'ascending' ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(h){ h.setAttribute('aria-sort', 'none'); });
    th.setAttribute('aria-sort', dir);
  }
  document.querySelectorAll('table.leaderboard').forEach(function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th, col){
      th.addEventListener('click', function(){
        var now = th.getAttribute('aria-sort');
        var dir = now === 'none' ? (th.getAttribute('data-default') || 'descending')
                                  : (now === 'ascending' ? 'descending' : 'ascending');
        sortTable(table, col, dir);
      });
    });
  });
  var m = /#sort=([^:&]+):(asc|desc)/.exec(window.location.hash);
  var first = document.querySelector('table.leaderboard');
  if(m && first){
    var cells = first.tHead.rows[0].cells;
    for(var i = 0; i < cells.length; i++){
      if(cells[i].getAttribute('data-key') === decodeURIComponent(m[1])){
        sortTable(first, i, m[2] === 'asc' ? 'ascending' : 'descending');
      }
    }
  }
})();
"""


def _fmt(v, digits: int = 3) -> str:
    return "" if v is None else f"{float(v):.{digits}f}"


def render_html(board: dict, title: str = "AnyTalker leaderboard") -> str:
    """A self-contained page: inline CSS + JS, no external requests. Every value taken from a
    results file (model names come from untrusted submissions) is HTML-escaped."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(title)}</title>", f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             f'<p class="meta">anytalker-toolkit {e(str(board["toolkit"]["version"]))}. Click a column header '
             "to sort; values are means over scored items with bootstrap confidence intervals.</p>"]
    for gi, g in enumerate(board["groups"]):
        metric_desc = ", ".join(f"{m['name']} v{m['version']} ({m['backend']} {m['backend_version']})"
                                for m in g["metrics"])
        parts.append(f"<h2>{e(g['benchmark'])} {e(g['version'])} &mdash; {g['n_items']} item(s)</h2>")
        parts.append(f'<p class="meta">manifest sha256 {e(str(g["manifest_sha256"])[:16])}&hellip;, '
                     f'intervals read as {e(str(g["interval_format"]))}; metrics: {e(metric_desc)}</p>')
        if g["differs_from_first_group"]:
            parts.append(f'<p class="meta">Not comparable with the first table: '
                         f'{e("; ".join(g["differs_from_first_group"]))}</p>')
        head = ['<th data-key="rank" data-type="number" data-default="ascending" aria-sort="ascending">Rank</th>',
                '<th class="text" data-key="model" data-type="text" data-default="ascending" aria-sort="none">Model</th>',
                '<th class="text" data-key="revision" data-type="text" data-default="ascending" aria-sort="none">Revision</th>']
        for m in g["metrics"]:
            arrow = "&uarr;" if m["higher_is_better"] else "&darr;"
            default = "descending" if m["higher_is_better"] else "ascending"
            head.append(f'<th data-key="{e(m["name"])}" data-type="number" data-default="{default}" aria-sort="none" '
                        f'title="{e(m["name"])} v{e(str(m["version"]))}, {e(str(m["backend"]))}">'
                        f"{e(m['name'])} {arrow}</th>")
        head.append('<th data-key="n_items" data-type="number" data-default="descending" aria-sort="none">Scored</th>')
        head.append('<th class="text" data-key="date" data-type="text" data-default="descending" aria-sort="none">Date</th>')
        parts.append(f'<table class="leaderboard" id="group-{gi}"><thead><tr>{"".join(head)}</tr></thead><tbody>')
        for row in g["rows"]:
            cells = [f'<td data-value="{row["rank"]}">{row["rank"]}</td>',
                     f'<td class="text">{e(str(row["model"]))}</td>',
                     f'<td class="text">{e(str(row["revision"]))}</td>']
            n_scored = []
            for m in g["metrics"]:
                r = row["metrics"].get(m["name"]) or {}
                v = r.get("value")
                if v is None:
                    cells.append(f'<td class="na" data-value="">n/a ({r.get("n_failed", 0)} failed)</td>')
                else:
                    cells.append(f'<td data-value="{float(v)!r}">{_fmt(v)} <span class="ci">[{_fmt(r.get("ci_low"))}, '
                                 f'{_fmt(r.get("ci_high"))}]</span></td>')
                n_scored.append(r.get("n_scored") or 0)
            n = min(n_scored) if n_scored else 0
            cells.append(f'<td data-value="{n}">{n}/{g["n_items"]}</td>')
            cells.append(f'<td class="text">{e(str(row["date"] or ""))}</td>')
            parts.append(f"<tr>{''.join(cells)}</tr>")
        parts.append("</tbody></table>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"

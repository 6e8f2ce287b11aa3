"""Rank results documents into a leaderboard (JSON + one self-contained, sortable HTML page).

Results are ranked together only when they are comparable: same benchmark and version, same
manifest and scoring file, same item set and interval reading, and for every metric the same
metric version, backend and backend version. Otherwise the leaderboard refuses (default) and says
which field differs, or, with ``on_mismatch="group"``, ranks each comparable group separately.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from kernel import __version__
from kernel.errors import UserError
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
# The page is benchmarks/templates/leaderboard.html.j2 (jinja2, autoescaped: model names come from
# untrusted submissions); here only the numbers the template draws are computed.

CHART_WIDTH, CHART_LABEL_W, CHART_VALUE_W, CHART_BAR_H = 440, 132, 58, 24


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("benchmarks", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=False,
                              undefined=jinja2.StrictUndefined)


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def metric_chart(group: dict, metric: dict) -> dict:
    """Geometry of one horizontal bar chart: a bar per model (value) with its CI as whiskers."""
    name = metric["name"]
    rows = group["rows"]
    vals = []
    for row in rows:
        r = row["metrics"].get(name) or {}
        vals += [v for v in (_num(r.get("value")), _num(r.get("ci_low")), _num(r.get("ci_high"))) if v is not None]
    lo = min([0.0, *vals]) if vals else 0.0
    hi = max([0.0, *vals]) if vals else 1.0
    if hi - lo < 1e-12:
        hi = lo + 1.0
    plot_w = CHART_WIDTH - CHART_LABEL_W - CHART_VALUE_W

    def x(v: float) -> float:
        return round(CHART_LABEL_W + plot_w * (v - lo) / (hi - lo), 1)

    bars, methods = [], set()
    for i, row in enumerate(rows):
        r = row["metrics"].get(name) or {}
        v, cl, ch = _num(r.get("value")), _num(r.get("ci_low")), _num(r.get("ci_high"))
        model = str(row.get("model"))
        bar = {"model": model, "short": model if len(model) <= 16 else model[:15] + "…", "y": 4 + i * CHART_BAR_H,
               "value": v, "label": "n/a" if v is None else f"{v:.3f}", "x0": None, "w": None,
               "lo_x": None, "hi_x": None}
        if v is not None:
            a, b = sorted((x(0.0), x(v)))
            bar.update(x0=a, w=max(1.0, round(b - a, 1)))
            if cl is not None and ch is not None:
                bar.update(lo_x=x(cl), hi_x=x(ch))
                bar["label"] = f"{v:.3f}"
                methods.add(r.get("ci_method") or "bootstrap")
        bars.append(bar)
    level = next((r["metrics"][name].get("ci_level") for r in rows if (r["metrics"].get(name) or {}).get("ci_level")),
                 None)
    ci_text = (f"{int(round(100 * level))} % CI, {', '.join(sorted(methods))}" if methods and level
               else "no CI: fewer than 2 items scored")
    return {"name": name, "higher_is_better": metric["higher_is_better"],
            "backend": f"{metric.get('backend')} {metric.get('backend_version')}", "ci_text": ci_text,
            "width": CHART_WIDTH, "height": 4 + len(rows) * CHART_BAR_H + 18, "label_w": CHART_LABEL_W,
            "plot_w": plot_w, "bar_h": CHART_BAR_H, "zero_x": x(0.0), "axis_lo": f"{lo:g}", "axis_hi": f"{hi:.3g}",
            "bars": bars}


def render_html(board: dict, title: str = "AnyTalker leaderboard") -> str:
    """A self-contained page (inline CSS, JS and SVG; no external requests): a sortable table and a
    bar chart with CI whiskers per metric for every comparable group."""
    groups = []
    for g in board["groups"]:
        rows = []
        for row in g["rows"]:
            n_scored = [(row["metrics"].get(m["name"]) or {}).get("n_scored") or 0 for m in g["metrics"]]
            rows.append({**row, "n_scored": min(n_scored) if n_scored else 0})
        g2 = {**g, "rows": rows}
        g2["charts"] = [metric_chart(g2, m) for m in g["metrics"]]
        groups.append(g2)
    env = _environment()
    js = env.get_template("leaderboard_sort.js.j2").render()
    return env.get_template("leaderboard.html.j2").render(board=board, groups=groups, title=title, js=js)

"""The curation report page: parsed HTML checks on real runs, then a headless Chromium screenshot."""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from curation.base import Stage
from curation.media import write_video
from pipelines import registry, shards
from pipelines.report import person_label, thumbnail_frames, write_report
from pipelines.runner import run_curation
from tests.badinputs import talking_like
from tests.conftest import REPO, SHARED, run_ffmpeg, shared_file

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
PERSON_STAGES = ("speech", "faces", "av_sync", "person_filter")


class Page(HTMLParser):
    """Every start tag with its attributes, in document order, plus the visible text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str | None = None, cls: str | None = None, **attrs) -> list[dict]:
        out = []
        for t, a in self.tags:
            if tag and t != tag:
                continue
            if cls and cls not in (a.get("class") or "").split():
                continue
            if all(a.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(a)
        return out


def _sections(html: str) -> dict[str, str]:
    """Section id -> its HTML (sections are not nested)."""
    out = {}
    for part in html.split('<section id="')[1:]:
        sid, _, rest = part.partition('"')
        out[sid] = rest.split("</section>")[0]
    return out


def _decode_thumb(src: str) -> np.ndarray:
    import cv2

    assert src.startswith("data:image/jpeg;base64,")
    img = cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _assert_self_contained(html: str) -> None:
    lowered = html.lower()
    for bad in ('src="http', "src='http", 'href="http', "<link", "@import", "url(http", "<script src"):
        assert bad not in lowered, f"report references an external resource: {bad}"


# --------------------------------------------------------------------------- video_only run


@pytest.fixture(scope="module")
def video_only_run(small_inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report_run") / "run"
    # audio required here so that the run has a no_audio reject to show (video_only takes silent sources)
    run_curation("video_only", small_inputs, out, overrides={"probe": {"require_audio": True}}, progress=False)
    return out


def test_report_of_video_only_run_shows_totals_reasons_timings_and_contact_sheets(video_only_run, tmp_path):
    manifest = shards.read_manifest(video_only_run)
    clips = shards.read_rows(video_only_run, "clips")
    rejects = shards.read_rows(video_only_run, "rejects")
    html_path = write_report(video_only_run, tmp_path / "report.html")
    html = html_path.read_text()
    _assert_self_contained(html)
    page = Page(html)
    sections = _sections(html)
    assert list(sections) == ["totals", "reasons", "timings", "clips", "rejects"]

    # totals: one card per status with the manifest's number
    shown = {}
    for status in ("ok", "filtered", "failed"):
        assert len(Page(sections["totals"]).find("div", cls="total", data_status=status)) == 1
        shown[status] = int(sections["totals"].split(f'data-status="{status}"><b>')[1].split("</b>")[0])
    assert shown == manifest["totals"] and shown["filtered"] == 4

    # reason chart: one bar per reason with the manifest's count, in an inline SVG
    assert page.find("svg", id="reason-chart")
    bars = {a["data-label"].split(" (")[0]: float(a["data-value"]) for a in page.find("g", cls="reason-bar")}
    assert bars == {k: float(v) for k, v in manifest["reasons"].items()}
    assert bars["decode_error"] == 2.0

    # stage timings from the manifest, in config order
    stage_rows = [a["data-stage"] for a in page.find("tr", cls="stage-row")]
    assert stage_rows == ["probe", "shots", "camera_motion", "clips"]
    assert set(stage_rows) == set(manifest["stage_seconds"])

    # one contact sheet per accepted clip with 4 decoded thumbnails inside [start, end)
    cards = page.find("div", cls="clip")
    assert sorted(c["data-clip-id"] for c in cards) == sorted(r["clip_id"] for r in clips)
    by_id = {r["clip_id"]: r for r in clips}
    for part in html.split('<div class="clip" ')[1:]:
        sub = Page('<div class="clip" ' + part.split("</section>")[0])
        cid = sub.find("div", cls="clip")[0]["data-clip-id"]
        thumbs = sub.find("img", cls="thumb")
        row = by_id[cid]
        assert [int(t["data-frame"]) for t in thumbs] == thumbnail_frames(row["start_frame"], row["end_frame"], 4)
        img = _decode_thumb(thumbs[0]["src"])
        assert img.shape[1] == 240 and img.std() > 5  # a real picture, 240 px wide

    # rejects: a block per reason; undecodable inputs get a placeholder that names the error
    blocks = {a["data-reason"] for a in page.find("div", cls="reason-samples")}
    assert blocks == {r["reason"] for r in rejects}
    empty = page.find("div", cls="reject", data_reason="empty_file")
    assert [e["data-source"] for e in empty] == ["bad/zero_byte.mp4"]
    placeholders = [a["data-error"] for a in page.find("div", cls="placeholder")]
    assert any("empty_file" in p and "0 bytes" in p for p in placeholders)
    # the no_audio reject is a decodable video: it gets a real thumbnail, not a placeholder
    no_audio = html.split('data-reason="no_audio" data-source="bad/no_audio.mp4"')[1].split("</div>")[0]
    assert 'class="thumb"' in no_audio


def test_report_truncates_long_runs_and_cli_writes_it(video_only_run, tmp_path):
    n_ok = len(shards.read_rows(video_only_run, "clips"))
    assert n_ok >= 2
    html = write_report(video_only_run, tmp_path / "short.html", max_clips=1).read_text()
    assert len(Page(html).find("div", cls="clip")) == 1
    assert f"Showing the first 1 of {n_ok} accepted clips" in html

    out = tmp_path / "cli" / "report.html"
    res = subprocess.run([sys.executable, "-m", "anytalker.cli", "curate", "report", str(video_only_run),
                          "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert out.exists() and len(Page(out.read_text()).find("div", cls="clip")) == n_ok

    # not a run folder: one readable line naming the file, exit code 2
    res = subprocess.run([sys.executable, "-m", "anytalker.cli", "curate", "report", str(tmp_path),
                          "--output", str(tmp_path / "x.html")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "run.json does not exist" in res.stderr and "Traceback" not in res.stderr


def test_report_reads_uri_runs_and_marks_moved_sources(tmp_path, ffmpeg):
    inputs = tmp_path / "in"
    inputs.mkdir()
    talking_like(inputs / "clip.mp4", seconds=2.5)
    # inputs and run folder given as file:// URIs (the pyarrow-filesystem path used for s3://)
    run_curation("video_only", inputs.as_uri(), tmp_path / "run", progress=False)
    html = write_report((tmp_path / "run").as_uri(), tmp_path / "uri.html").read_text()
    assert len(Page(html).find("img", cls="thumb")) == 4

    # the source is gone since the run: the card stays, with a placeholder naming the problem
    (inputs / "clip.mp4").unlink()
    html = write_report(tmp_path / "run", tmp_path / "moved.html").read_text()
    page = Page(html)
    assert len(page.find("div", cls="clip")) == 1 and not page.find("img", cls="thumb")
    assert any("clip.mp4" in a["data-error"] for a in page.find("div", cls="placeholder"))


# --------------------------------------------------------------------------- persons: boxes + timelines

# two "faces" drawn at known places in a synthetic video; P1 is missed on frames 20-30
LAYOUT = {
    "boxes": {0: [40.0, 70.0, 120.0, 150.0], 1: [200.0, 70.0, 280.0, 150.0]},
    "missed": {1: range(20, 31)},
    "speaking": {0: [[0.0, 1.2]], 1: [[1.4, 2.9]]},
    "sync_conf": {0: 6.5, 1: 5.1},
}


class KnownLayoutStage(Stage):
    """Test stage: supplies the persons of the synthetic two-person video from ``LAYOUT`` (the
    positions it was drawn with), so the report's drawing can be checked pixel by pixel."""

    name = "known_layout"
    version = "test"
    requires = ("start_frame", "end_frame", "fps")
    produces = ("persons", "num_persons", "sync_backend", "sync_matrix")

    def process(self, row):
        if "two_people" not in Path(row["source_path"]).name:
            return row
        frames = list(range(int(row["start_frame"]), int(row["end_frame"])))
        persons = []
        for i, box in LAYOUT["boxes"].items():
            missed = LAYOUT["missed"].get(i, ())
            persons.append({
                "index": i, "frames": frames, "boxes": [None if f in missed else box for f in frames],
                "ref_box": box, "face_size": 80.0, "audio_ref": f"mix:{row['source_path']}",
                "speaking_intervals": LAYOUT["speaking"][i], "speaking_s": 1.2 + 0.3 * i,
                "sync_offset": i, "sync_conf": LAYOUT["sync_conf"][i], "sync_dist": 7.0,
            })
        return {**row, "persons": persons, "num_persons": 2, "sync_backend": "test-known-layout",
                "sync_matrix": [[6.5, 0.4], [0.3, 5.1]]}


def _two_people_video(path: Path, tmp: Path) -> Path:
    h, w, n = 240, 320, 75
    frames = np.full((n, h, w, 3), 90, np.uint8)
    frames[:, :, :, 2] = np.linspace(60, 160, w, dtype=np.uint8)[None, None, :]
    for i, (x1, y1, x2, y2) in LAYOUT["boxes"].items():
        frames[:, int(y1):int(y2), int(x1):int(x2)] = (225, 190, 160)
    wav = tmp / "tone.wav"
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=3", str(wav))
    write_video(path, frames, 25, audio=wav)
    return path


@pytest.fixture(scope="module")
def layout_run(tmp_path_factory, ffmpeg) -> Path:
    root = tmp_path_factory.mktemp("layout_inputs")
    _two_people_video(root / "a_two_people.mp4", root)  # sorts first: on screen in the screenshot
    talking_like(root / "bars.mp4", seconds=2.5)
    real = SHARED / "talking" / "infinitetalk_ref_video.mp4"
    if real.exists():
        os.symlink(real, root / "real_talking.mp4")
    (root / "bad").mkdir()
    (root / "bad" / "zero_byte.mp4").write_bytes(b"")
    (root / "bad" / "text_named.mp4").write_text("not a video\n" * 10)
    talking_like(root / "bad" / "silent_film.mp4", audio=False)
    cfg = root.parent / "layout.yaml"
    cfg.write_text("name: layout\npartition_size: 3\nstages:\n  - name: probe\n  - name: shots\n"
                   "  - name: camera_motion\n  - name: clips\n    params: {max_clip_s: 10.0}\n  - name: known_layout\n")
    out = root.parent / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.STAGES, "known_layout", f"{__name__}:KnownLayoutStage")
        run_curation(cfg, root, out, progress=False)
    return out


def test_report_draws_labelled_face_boxes_and_speaking_timelines(layout_run, tmp_path):
    html = write_report(layout_run, tmp_path / "layout.html").read_text()
    page = Page(html)
    card_html = html.split('data-source="a_two_people.mp4" data-persons="2"')[1].split('<div class="clip" ')[0].split("</section>")[0]
    card = Page(card_html)

    # the timeline: two lanes, the speaking bars where the intervals are
    svg = card.find("svg", cls="timeline")
    assert len(svg) == 1 and float(svg[0]["data-duration"]) == pytest.approx(3.0)
    lanes = [a["data-person"] for a in card.find("g", cls="lane")]
    assert lanes == ["0", "1"]
    spans = [(float(a["data-start"]), float(a["data-end"])) for a in card.find("rect", cls="speaking")]
    assert spans == [(0.0, 1.2), (1.4, 2.9)]
    assert "P0 (left)" in card_html and person_label(1) == "P1"

    # per-person sync confidence and the sync backend are shown
    assert re.findall(r'<td class="sync-conf">([^<]*)</td>', card_html) == ["6.50", "5.10"]
    assert card.find("div", cls="sync-backend", data_backend="test-known-layout")

    # boxes drawn on the thumbnails in the person colours; P1 has no box where it was missed
    thumbs = card.find("img", cls="thumb")
    assert [int(t["data-frame"]) for t in thumbs] == [0, 25, 49, 74]
    scale = 240 / 320

    def label_share(img, person, colour):
        """Share of the label tag's area (above the box's top-left corner) in ``colour``."""
        x1, y1 = (int(v * scale) for v in LAYOUT["boxes"][person][:2])
        patch = img[y1 - 14:y1, x1:x1 + 50].astype(int)
        return float((np.abs(patch - colour).max(axis=2) < 60).mean())

    orange, blue = np.array([255, 140, 0]), np.array([30, 144, 255])
    for t in thumbs:
        img = _decode_thumb(t["src"])
        assert label_share(img, 0, orange) > 0.3
        if int(t["data-frame"]) == 25:
            assert label_share(img, 1, blue) < 0.05, "P1 is missed on frame 25: no box expected"
        else:
            assert label_share(img, 1, blue) > 0.3

    # clips without persons have no timeline
    bars_card = html.split('data-source="bars.mp4"')[1].split('<div class="clip" ')[0]
    assert 'class="timeline"' not in bars_card
    assert page.find("div", cls="reject", data_reason="no_audio")


def _chromium_screenshot(html: Path, png: Path, tmp: Path) -> None:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", f"--screenshot={png}", "--window-size=1280,2000",
           html.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0 and png.exists(), res.stderr[-2000:]


def _assert_not_blank(png: Path) -> None:
    # PIL, not cv2: in a process that has loaded decord/mediapipe, OpenCV's libpng fails on
    # chromium's PNGs ("bad parameters to zlib"), although the files are valid
    from PIL import Image

    with Image.open(png) as im:
        img = np.asarray(im.convert("RGB"))
    assert img.shape[:2] == (2000, 1280)
    assert float(img.std()) > 20, "screenshot is nearly uniform: the page did not render"
    colours = np.unique((img // 32).reshape(-1, 3), axis=0)
    assert len(colours) >= 30, f"only {len(colours)} distinct colours: thumbnails/charts missing"


def test_report_renders_in_headless_chromium(layout_run, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install it (apt-get install -y chromium) to screenshot the report")
    html = write_report(layout_run, tmp_path / "report.html")
    png = tmp_path / "report.png"
    _chromium_screenshot(html, png, tmp_path)
    _assert_not_blank(png)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(png, ARTIFACTS / "curation_report.png")
    shutil.copyfile(html, ARTIFACTS / "curation_report.html")


@pytest.mark.parametrize("width,height", [(1400, 900), (390, 2400)])
def test_report_fits_the_window_at_1400_and_390_px(layout_run, tmp_path, width, height):
    from tests import pagecheck

    html = write_report(layout_run, tmp_path / "report.html")
    verdict = pagecheck.layout(html, width, height, ("section", "svg.bar-chart", "img.thumb"))
    assert verdict["width"] == width
    assert verdict["bad"] == [], f"clipped at {width}px: {verdict['bad'][:10]}"
    assert verdict["visible"]["section"] == 5 and verdict["visible"]["svg.bar-chart"] == 2
    assert verdict["visible"]["img.thumb"] >= 4
    pagecheck.screenshot(html, ARTIFACTS / f"curation_report-{width}.png", width, height)


# --------------------------------------------------------------------------- multi_person on interact_11


def _person_stages_missing() -> list[str]:
    return [s for s in PERSON_STAGES if importlib.util.find_spec(f"curation.stages.{s}") is None]


@pytest.mark.slow
def test_report_of_multi_person_run_on_interact_11(tmp_path):
    missing = _person_stages_missing()
    if missing:
        pytest.skip(f"person stages not in this build yet: curation/stages/{{{','.join(missing)}}}.py")
    video = shared_file("anytalker_benchmark/interact_11.mp4")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{video}\n")
    out = tmp_path / "run"
    run_curation("multi_person", listing, out, data_root=video.parents[1], progress=False)
    rows = shards.read_rows(out, "clips") + shards.read_rows(out, "rejects")
    html_path = write_report(out, tmp_path / "interact_11.html")
    html = html_path.read_text()
    page = Page(html)
    assert [r["source_path"] for r in rows] == ["anytalker_benchmark/interact_11.mp4"] * len(rows)
    # accepted or not, interact_11 reaches the person stages: its card (a contact sheet when
    # accepted, the reject sample otherwise) shows both people, their speech and sync
    with_persons = [r for r in rows if r.get("persons")]
    assert with_persons, f"no row measured persons: {[(r['reason'], r.get('error_detail')) for r in rows]}"
    clips = [r for r in rows if r["status"] == "ok"]
    assert len(page.find("div", cls="clip")) == len(clips)
    assert all(c["data-persons"] == "2" for c in page.find("div", cls="clip"))
    shown = clips or with_persons[:2]
    lanes = [a["data-person"] for a in page.find("g", cls="lane")]
    assert lanes == ["0", "1"] * len(shown)
    for r in shown:
        assert len(r["persons"]) == 2
        assert page.find("div", cls="sync-backend", data_backend=r["sync_backend"])
    drawn = sorted((float(a["data-start"]), float(a["data-end"])) for a in page.find("rect", cls="speaking"))
    expected = sorted((round(a, 3), round(b, 3)) for r in shown for p in r["persons"]
                      for a, b in (p.get("speaking_intervals") or []))
    assert drawn and drawn == expected
    assert "P0 (left)" in html
    if CHROMIUM.exists():
        png = tmp_path / "interact_11.png"
        _chromium_screenshot(html_path, png, tmp_path)
        _assert_not_blank(png)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(png, ARTIFACTS / "curation_report_interact_11.png")

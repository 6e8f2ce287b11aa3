"""Validate a benchmark submission: metadata, exact file set, and every video against the protocol.

The report is a list of checks; each check has one line per problem naming the file and what to
do. Nothing from a submission is executed: videos are only probed (ffprobe) and a few frames are
decoded (decord).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.archive import Limits, OpenedSubmission, Problem, open_submission
from kernel.errors import UserError
from benchmarks.manifest import Item, Manifest, schema_errors

SUBMISSION_JSON = "submission.json"
FPS_TOLERANCE = 0.01  # ffprobe reports 24000/1001-style rates; compare with a small slack
# Largest accepted frame (pixels): every 4K format passes; one decoded 8192x8192 frame is 200 MB
# and validating such a video took 2.2 GB. A protocol may set its own ``max_frame_pixels``.
MAX_FRAME_PIXELS = 4096 * 2304


@dataclass
class Check:
    name: str
    summary: str = ""
    problems: list[Problem] = field(default_factory=list)
    skipped: str | None = None  # why the check did not run (an earlier check failed)

    @property
    def ok(self) -> bool:
        return not self.problems and self.skipped is None

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "summary": self.summary, "skipped": self.skipped,
                "problems": [{"file": p.file, "message": p.message} for p in self.problems]}


@dataclass
class ValidationReport:
    source: Path
    benchmark: str
    version: str
    item_ids: list[str]
    checks: list[Check] = field(default_factory=list)
    metadata: dict | None = None
    videos: dict[str, dict] = field(default_factory=dict)  # item_id -> probe facts

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def n_problems(self) -> int:
        return sum(len(c.problems) for c in self.checks)

    def render(self) -> str:
        lines = [f"submission {self.source}: benchmark {self.benchmark} {self.version}, "
                 f"{len(self.item_ids)} item(s) expected"]
        for c in self.checks:
            tag = "PASS" if c.ok else ("SKIP" if c.skipped else "FAIL")
            text = c.skipped if c.skipped else c.summary
            lines.append(f"[{tag}] {c.name}: {text}")
            lines.extend(f"    - {p}" for p in c.problems)
        lines.append("RESULT: VALID" if self.ok else
                     f"RESULT: INVALID ({self.n_problems} problem(s); fix the lines above and run validate again)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"source": str(self.source), "benchmark": self.benchmark, "version": self.version,
                "items": self.item_ids, "ok": self.ok, "checks": [c.to_dict() for c in self.checks],
                "metadata": self.metadata, "videos": self.videos}


def check_metadata(root: Path, manifest: Manifest) -> tuple[Check, dict | None]:
    check = Check("metadata")
    path = root / SUBMISSION_JSON
    if not path.is_file():
        check.problems.append(Problem(SUBMISSION_JSON, 'missing; add {"benchmark": "%s", "version": "%s", '
                                      '"model": "<name>", "revision": "<commit or tag>"} at the submission root'
                                      % (manifest.benchmark, manifest.version)))
        return check, None
    size = path.stat().st_size
    if size > Limits().max_json_bytes:
        check.problems.append(Problem(SUBMISSION_JSON, f"{size} bytes, over the {Limits().max_json_bytes} byte limit "
                                      "for four short fields; write only benchmark, version, model, revision"))
        return check, None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        errors = schema_errors(doc, "submission.schema.json")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        check.problems.append(Problem(SUBMISSION_JSON, f"not valid UTF-8 JSON ({e}); fix the file"))
        return check, None
    except RecursionError:
        check.problems.append(Problem(SUBMISSION_JSON, "nested too deeply to read (arrays/objects inside each "
                                      "other thousands of levels deep); write a flat object"))
        return check, None
    for err in errors:
        check.problems.append(Problem(SUBMISSION_JSON, f"{err}; see benchmarks/schemas/submission.schema.json"))
    if isinstance(doc, dict):
        if doc.get("benchmark") not in (None, manifest.benchmark):
            check.problems.append(Problem(SUBMISSION_JSON, f"benchmark is {doc['benchmark']!r} but this check is for "
                                          f"{manifest.benchmark!r}; fix the field or pass --benchmark"))
        if doc.get("version") not in (None, manifest.version):
            check.problems.append(Problem(SUBMISSION_JSON, f"version is {doc['version']!r} but this check is for "
                                          f"{manifest.version!r}; fix the field or pass --version"))
    if not check.problems:
        check.summary = f"model {doc['model']!r} revision {doc['revision']!r}"
    return check, doc if isinstance(doc, dict) else None


def check_file_set(files: list[str], items: list[Item], manifest: Manifest, restricted: bool) -> Check:
    """Exactly submission.json + one video per expected item. Videos of other benchmark items are
    tolerated when ``--items`` restricts the set (they are simply not checked)."""
    check = Check("files")
    present = set(files)
    expected = {it.video_file for it in items}
    all_videos = {it.video_file for it in manifest.items}
    missing = sorted((it for it in items if it.video_file not in present), key=lambda it: _natural(it.item_id))
    for it in missing:
        check.problems.append(Problem(it.video_file, f"missing; render item {it.item_id} and save it as "
                                      f"{it.video_file} at the submission root (or restrict with --items)"))
    allowed = {SUBMISSION_JSON} | expected | (all_videos if restricted else set())
    extra = sorted(present - allowed)
    for f in extra:
        if f in all_videos:
            hint = "not expected in this item set; remove it"
        elif Path(f).name in all_videos or Path(f).name == SUBMISSION_JSON:
            hint = "inside a sub-folder; move it to the submission root"
        else:
            hint = f"not part of {manifest.benchmark} {manifest.version}; remove it (expected names: " \
                   f"{manifest.protocol['video_file_pattern']})"
        check.problems.append(Problem(f, hint))
    check.summary = (f"{len(expected) - len(missing)}/{len(expected)} expected video(s) present, "
                     f"{len(missing)} missing, {len(extra)} unexpected")
    return check


def _natural(item_id: str):
    head, _, tail = item_id.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (item_id, 0)


def probe_video(path: Path, item: Item, protocol: dict) -> tuple[dict, list[Problem]]:
    """ffprobe + decode first/middle/last frame; check fps, size, duration vs audio, audio track."""
    from curation.media import MediaError, VideoReader, probe

    name = item.video_file
    problems: list[Problem] = []
    try:
        info = probe(path)
    except MediaError as e:
        return {}, [Problem(name, f"ffprobe cannot read it ({str(e)[-200:]}); re-encode as H.264 mp4 "
                                  "(ffmpeg -i in -c:v libx264 -pix_fmt yuv420p -c:a aac out.mp4)")]
    facts = {k: v for k, v in info.to_dict().items()}
    if not info.has_video:
        return facts, [Problem(name, "has no video stream; submit the generated video, not audio only")]
    max_pixels = int(protocol.get("max_frame_pixels", MAX_FRAME_PIXELS))
    if (info.width or 0) * (info.height or 0) > max_pixels:  # refused before decoding a frame of it
        return facts, [Problem(name, f"{info.width}x{info.height} frames exceed the limit of {max_pixels / 1e6:.1f} "
                                     "megapixels; render at the benchmark's size (e.g. 512x512 to 1920x1080)")]
    try:
        reader = VideoReader(path)
        n = len(reader)
        idx = sorted({0, n // 2, max(0, n - 1)}) if n else []
        frames = reader.get(idx)
        facts["decoded_frames"] = len(idx)
        facts["decoded_frame_count"] = n
        if n == 0 or frames.shape[0] != len(idx):
            problems.append(Problem(name, "decodes to no frames; re-encode the video"))
    except MediaError as e:
        problems.append(Problem(name, f"frames do not decode ({str(e)[-200:]}); re-encode as H.264 mp4"))
    fps = info.fps
    if fps is None:
        problems.append(Problem(name, "frame rate unknown; re-encode with a constant frame rate (ffmpeg -r 25)"))
    elif not (protocol["fps_min"] - FPS_TOLERANCE <= fps <= protocol["fps_max"] + FPS_TOLERANCE):
        problems.append(Problem(name, f"frame rate {fps:.3f} fps outside the accepted {protocol['fps_min']:g}-"
                                      f"{protocol['fps_max']:g} fps; re-encode (ffmpeg -r 25)"))
    if info.width and info.height and (info.width < protocol.get("min_width", 1) or info.height < protocol.get("min_height", 1)):
        problems.append(Problem(name, f"{info.width}x{info.height} is smaller than the minimum "
                                      f"{protocol.get('min_width')}x{protocol.get('min_height')}; render larger"))
    dur = info.duration_s
    if dur is None:
        problems.append(Problem(name, "duration unknown; re-mux the file (ffmpeg -i in -c copy out.mp4)"))
    else:
        if item.min_duration_s is not None and dur < item.min_duration_s:
            problems.append(Problem(name, f"{dur:.3f} s is shorter than its audio ({item.audio_duration_s:.3f} s; "
                                          f"minimum {item.min_duration_s:.3f} s); generate the whole audio"))
        if item.max_duration_s is not None and dur > item.max_duration_s:
            problems.append(Problem(name, f"{dur:.3f} s is longer than its audio ({item.audio_duration_s:.3f} s; "
                                          f"maximum {item.max_duration_s:.3f} s); trim it to the audio"))
    if protocol.get("audio_track_required", True) and not info.has_audio:
        problems.append(Problem(name, "has no audio track; mux the item's mixed audio into the video "
                                      "(ffmpeg -i video.mp4 -i mix.wav -c:v copy -c:a aac -shortest out.mp4)"))
    return facts, problems


def submission_sha256(root: Path, video_files: list[str]) -> tuple[str, dict[str, str]]:
    """sha256 over submission.json's sha256 and the sorted (file name, sha256) of the videos.

    Canonical text hashed: ``submission.json <sha>\\n`` then ``<name> <sha>\\n`` per video, sorted
    by name. Returns (digest, {name: sha256}).
    """
    from kernel.media import sha256_file

    shas = {f: sha256_file(root / f) for f in sorted(video_files)}
    h = hashlib.sha256()
    meta = root / SUBMISSION_JSON
    h.update(f"{SUBMISSION_JSON} {sha256_file(meta) if meta.is_file() else '-'}\n".encode())
    for name in sorted(shas):
        h.update(f"{name} {shas[name]}\n".encode())
    return h.hexdigest(), shas


def validate_opened(opened: OpenedSubmission, manifest: Manifest, item_ids: list[str] | None,
                    report: ValidationReport) -> ValidationReport:
    items = manifest.select(item_ids)
    meta_check, report.metadata = check_metadata(opened.root, manifest)
    report.checks.append(meta_check)
    files_check = check_file_set(opened.files, items, manifest, restricted=bool(item_ids))
    report.checks.append(files_check)
    present = set(opened.files)
    video_check = Check("videos")
    n_checked = 0
    for it in items:
        if it.video_file not in present:
            continue
        try:
            facts, problems = probe_video(opened.root / it.video_file, it, manifest.protocol)
        except Exception as e:  # noqa: BLE001 - an untrusted file must end as a reason, never a traceback
            facts, problems = {}, [Problem(it.video_file, f"cannot be checked ({type(e).__name__}: {str(e)[:200]}); "
                                                          "re-encode as H.264 mp4")]
        report.videos[it.item_id] = facts
        video_check.problems.extend(problems)
        n_checked += 1
    bad = len({p.file for p in video_check.problems})
    video_check.summary = (f"{n_checked} video(s) probed and decoded; {n_checked - bad} meet the protocol "
                           f"({manifest.protocol['fps_min']:g}-{manifest.protocol['fps_max']:g} fps, duration "
                           f"matches audio, audio track present)")
    if n_checked == 0:
        video_check.skipped = "no expected video present"
    report.checks.append(video_check)
    return report


def validate_submission(source: str | Path, manifest: Manifest, item_ids: list[str] | None = None,
                        workdir: str | Path | None = None, limits: Limits = Limits()
                        ) -> tuple[ValidationReport, OpenedSubmission | None]:
    """Run every check. ``workdir`` receives the extraction of a zip (a temp dir when None; it is
    then deleted before returning, so pass one when the files are needed afterwards)."""
    selected = manifest.select(item_ids)
    report = ValidationReport(Path(source), manifest.benchmark, manifest.version, [it.item_id for it in selected])
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="anytalker-validate-") as tmp:
            report, _ = validate_submission(source, manifest, item_ids, tmp, limits)
            return report, None
    try:
        opened, problems = open_submission(source, workdir, limits)
    except UserError:
        raise  # the path itself is wrong (not found): a usage error, not a report
    except Exception as e:  # noqa: BLE001 - CRC errors, lying headers, clashes: INVALID with the reason
        opened, problems = None, [Problem(Path(source).name, f"cannot be read or extracted safely "
                                                             f"({type(e).__name__}: {str(e)[:200]}); re-create it "
                                                             "with `zip -r` from the submission folder")]
    archive = Check("archive", problems=problems)
    report.checks.append(archive)
    if opened is None:
        archive.summary = "unsafe or unreadable; nothing was extracted"
        for name in ("metadata", "files", "videos"):
            report.checks.append(Check(name, skipped="not run: the archive check failed"))
        return report, None
    archive.summary = (f"{opened.kind}, {len(opened.files)} file(s), {opened.total_bytes / 1e6:.1f} MB"
                       + (", all members safe, extracted to a temp folder" if opened.kind == "zip" else ""))
    validate_opened(opened, manifest, item_ids, report)
    return report, opened

"""`person_filter`: binds voices to faces and keeps clips whose lips match their speech.

1-person clips (``expected_persons=1``): the face is bound to the voice it syncs best with
(a regrouped single-person span normally holds one voice).
2-person clips (``expected_persons=2``): the binding speaker -> face is the assignment that
maximises the summed confidence of the 2x2 ``sync_matrix``; after binding, the matrix's two
largest entries must lie on its diagonal (each face syncs better with its own voice than with
the other one, and each voice better with its own face), else ``sync_not_diagonal``. With one
voice in a two-person clip the voice goes to the face that syncs best with it and the other
person is silent.

Then every bound (speaking) person needs ``sync_conf >= min_sync_conf`` (else ``low_sync``)
and ``|sync_offset| <= max_abs_offset`` (else ``sync_offset``). Persons get ``audio_ref``
(``mix:<source_path>``: the source carries one mixed track), ``speaking_intervals`` (their
voice's turns, clip-relative seconds), ``speaking_s`` and the bound ``sync_*`` values; the
``sync_matrix`` rows are reordered so that row i is the voice bound to person i.

Explicit rules before the thresholds, every backend: a bound person whose lips do not move
(``static_mouth`` from ``av_sync``) is rejected as ``static_mouth``; a person whose audio holds
less than ``min_speech_frac`` (default ``MIN_SPEECH_FRAC`` 0.2) speech is rejected as ``no_speech`` (not a sync failure).

Thresholds are per sync backend (``SYNC_THRESHOLDS``; ``min_sync_conf`` / ``max_abs_offset``
None = the backend's). ``judge``: chosen out of fold by ``python -m benchmarks.validity sync``
(docs/calibration.md, docs/sync_judge.md): min_sync_conf 0.235 (the lowest conf at which the whole decision, with |offset| <= 3, accepts at most 10 % of the
out-of-fold mismatched speech windows), max_abs_offset 3 (set a priori); out of fold this keeps 88.4 % of in-sync and
rejects 92.8 % of mismatched 4 s windows, window AUC 0.949 (round-4b judge). ``landmark``: 0.2 / 4, measured on 4 s
windows of the shared talking clips (0.73 of in-sync and 0.15 of mismatched windows accepted).
``syncnet``: joonson's scale, no weights here to measure with: set ``min_sync_conf`` yourself.
``require_diagonal`` is the paper's two-person rule. Two or more bound voices share one
recording and so one AV offset: the offset minimising their mean distance curve is used, and
each person's ``sync_conf`` / ``sync_dist`` are read at it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curation.base import Filter, Reason, Resources, Row
from curation.fields import PERSON, Field
from curation.sync import DEFAULT_BACKEND
from curation.sync_judge import MIN_SPEECH_FRAC

# Per sync backend: (min_sync_conf, max_abs_offset), chosen out of fold (docs/calibration.md).
# syncnet: no weights here to measure with: the user sets min_sync_conf for it.
SYNC_THRESHOLDS: dict[str, tuple[float | None, int | None]] = {
    "judge": (0.235, 3),
    "landmark": (0.2, 4),
    "syncnet": (None, 4),
}


def _joint_offset(curves: list, binding: list) -> int | None:
    """Offset minimising the mean of the bound voices' distance curves, when two or more
    voices are bound (None otherwise)."""
    bound = [np.asarray(curves[k][j], dtype=np.float64) for j, k in enumerate(binding)
             if k is not None and k < len(curves) and j < len(curves[k]) and curves[k][j]]
    if len(bound) < 2 or len({len(c) for c in bound}) != 1:
        return None
    mean = np.mean(bound, axis=0)
    return (len(mean) - 1) // 2 - int(np.argmin(mean))


def _assignments(n_speakers: int, n_persons: int):
    """Every injective binding as a list: speaker index (or None = silent) per person."""
    if n_speakers >= n_persons:
        for perm in itertools.permutations(range(n_speakers), n_persons):
            yield list(perm)
    else:
        for perm in itertools.permutations(range(n_persons), n_speakers):
            cand: list[int | None] = [None] * n_persons
            for k, j in enumerate(perm):
                cand[j] = k
            yield cand


@dataclass
class PersonFilterParams:
    """Parameters of ``person_filter`` (see the stage docstring for the measurements behind them)."""

    expected_persons: int | None = 1
    # per sync backend: their confidence scales differ (SYNC_THRESHOLDS, docs/calibration.md);
    # syncnet has no default: no weights here to measure its threshold with
    min_sync_conf: dict[str, float] = field(default_factory=lambda: {
        b: c for b, (c, _) in SYNC_THRESHOLDS.items() if c is not None})
    # per sync backend, frames at 25 fps; a backend not listed gets 4
    max_abs_offset: dict[str, int] = field(default_factory=lambda: {
        b: o for b, (_, o) in SYNC_THRESHOLDS.items() if o is not None})
    require_diagonal: bool = True
    # below this speech share under the face a window is no_speech, not a sync failure
    min_speech_frac: float = MIN_SPEECH_FRAC


class PersonFilter(Filter):
    name = "person_filter"
    version = "1"
    requires = ("persons", "sync_matrix")
    produces = ("num_persons",)
    fields = {
        "num_persons": Field(pa.int32()), "persons": Field(pa.list_(PERSON)),
        "sync_matrix": Field(pa.list_(pa.list_(pa.float64())), "sync backend scale",
                             "row i = the voice bound to person i"),
        "sync_offsets": Field(pa.list_(pa.list_(pa.int32())), "frame@25fps"),
        "sync_dists": Field(pa.list_(pa.list_(pa.float64())), "sync backend scale"),
        "sync_speakers": Field(pa.list_(pa.string())),
        "sync_curves": Field(pa.list_(pa.list_(pa.list_(pa.float64()))), "sync backend scale"),
        "sync_joint_offset": Field(pa.int32(), "frame@25fps", "shared offset of two or more bound voices"),
        "speaker_of_person": Field(pa.list_(pa.string())),
    }
    resources = Resources(cpus=0.25)
    params = PersonFilterParams

    def check_upstream(self, upstream: dict) -> None:
        from curation.base import StageConfigError

        thresholds = self.min_sync_conf
        if not isinstance(thresholds, dict):
            raise StageConfigError(
                f"person_filter.min_sync_conf must map sync backend -> threshold (e.g. {{landmark: 0.2}}), "
                f"got {thresholds!r}: the backends' confidence scales differ")
        sync = upstream.get("av_sync")
        backend = getattr(sync, "backend", None) if sync is not None else None
        if backend is not None and backend not in thresholds:
            raise StageConfigError(
                f"person_filter.min_sync_conf has no threshold for av_sync backend {backend!r} "
                f"(given: {sorted(thresholds)}); add min_sync_conf: {{{backend}: VALUE}} measured as in "
                "docs/calibration.md")

    def thresholds(self, row: Row) -> tuple[float, int]:
        """(min_sync_conf, max_abs_offset) for the sync backend that made the row."""
        backend = str(row.get("sync_backend") or DEFAULT_BACKEND).split()[0]
        try:
            conf = float(self.min_sync_conf[backend])
        except KeyError:
            raise ValueError(f"person_filter.min_sync_conf has no threshold for sync backend {backend!r}; "
                             "set person_filter.min_sync_conf: {BACKEND: VALUE} (docs/calibration.md)") from None
        return conf, int(self.max_abs_offset.get(backend, 4))

    def measure(self, row: Row) -> Row:
        persons = [dict(p) for p in row.get("persons") or []]
        matrix = [list(r) for r in row.get("sync_matrix") or []]
        offsets = [list(r) for r in row.get("sync_offsets") or []]
        dists = [list(r) for r in row.get("sync_dists") or []]
        speakers = list(row.get("sync_speakers") or [])
        n_p, n_s = len(persons), len(matrix)
        score = [[(c if c is not None else float("-inf")) for c in r] for r in matrix]
        # speaker for each person (None = silent): best total confidence over injective maps
        best, best_total = [None] * n_p, float("-inf")
        for cand in _assignments(n_s, n_p):
            total = sum(score[k][j] for j, k in enumerate(cand) if k is not None)
            if total > best_total:
                best, best_total = cand, total
        curves = row.get("sync_curves") or []
        joint = _joint_offset(curves, best)
        intervals = list(row.get("speech_intervals") or [])
        src = row.get("source_path") or row.get("source_abs_path")
        for j, p in enumerate(persons):
            k = best[j] if j < len(best) else None
            spk = speakers[k] if k is not None and k < len(speakers) else None
            ivs = [{"start": float(iv["start"]), "end": float(iv["end"]), "speaker": None} for iv in intervals
                   if spk is not None and (spk == "mix" or str(iv["speaker"]) == spk)]
            p.update(
                audio_ref=f"mix:{src}",
                speaking_intervals=ivs,
                speaking_s=round(sum(iv["end"] - iv["start"] for iv in ivs), 3),
                sync_offset=offsets[k][j] if k is not None and offsets else None,
                sync_conf=matrix[k][j] if k is not None else None,
                sync_dist=dists[k][j] if k is not None and dists else None,
            )
            if joint is not None and k is not None and curves[k][j]:
                # one recording has one AV offset: read every bound voice at the joint optimum
                c = np.asarray(curves[k][j], dtype=np.float64)
                vshift = (len(c) - 1) // 2
                i = vshift - joint
                p.update(sync_offset=joint, sync_conf=round(float(np.median(c) - c[i]), 4),
                         sync_dist=round(float(c[i]), 4))
        bound_rows = [best[j] for j in range(n_p) if best[j] is not None]
        order = bound_rows + [k for k in range(n_s) if k not in bound_rows]
        return {
            "persons": persons,
            "num_persons": n_p,
            "sync_matrix": [matrix[k] for k in order],
            "sync_offsets": [offsets[k] for k in order] if offsets else offsets,
            "sync_dists": [dists[k] for k in order] if dists else dists,
            "sync_speakers": [speakers[k] for k in order] if speakers else speakers,
            "sync_curves": [curves[k] for k in order] if curves else curves,
            "sync_joint_offset": joint,
            "speaker_of_person": [speakers[best[j]] if best[j] is not None and speakers else None
                                  for j in range(n_p)],
        }

    def keep(self, row: Row) -> tuple[bool, Reason | None, str]:
        persons = row["persons"]
        n = len(persons)
        if self.expected_persons is not None and n != int(self.expected_persons):
            reason = Reason.TOO_FEW_FACES if n < int(self.expected_persons) else Reason.TOO_MANY_FACES
            return False, reason, f"{n} persons, expected {self.expected_persons}"
        m = row["sync_matrix"]
        if self.require_diagonal and n == 2 and len(m) >= 2:
            vals = [[(c if c is not None else float("-inf")) for c in r[:2]] for r in m[:2]]
            diag = min(vals[0][0], vals[1][1])
            off = max(vals[0][1], vals[1][0])
            if not diag > off:
                return False, Reason.SYNC_NOT_DIAGONAL, (
                    f"after binding, sync matrix {m} has an off-diagonal entry {off} >= diagonal {diag}")
        speaking = [p for p in persons if p.get("sync_conf") is not None]
        if not speaking:
            return False, Reason.LOW_SYNC, "no person could be bound to a voice"
        min_conf, max_off = self.thresholds(row)
        for p in speaking:
            if p.get("static_mouth"):
                return False, Reason.STATIC_MOUTH, (
                    f"person {p.get('index')}: lips do not move (lip motion {p.get('lip_motion')})")
        for p in speaking:
            if p.get("speech_frac") is not None and p["speech_frac"] < float(self.min_speech_frac):
                return False, Reason.NO_SPEECH, (
                    f"person {p.get('index')}: {p['speech_frac']:.0%} of the audio under the face is speech "
                    f"(< min_speech_frac={self.min_speech_frac})")
        for p in speaking:
            if p["sync_conf"] < min_conf:
                return False, Reason.LOW_SYNC, (
                    f"person {p.get('index')}: sync conf {p['sync_conf']:.3f} < min_sync_conf={min_conf}")
        for p in speaking:
            if p["sync_offset"] is not None and abs(p["sync_offset"]) > max_off:
                return False, Reason.SYNC_OFFSET, (
                    f"person {p.get('index')}: AV offset {p['sync_offset']} frames > max_abs_offset={max_off}")
        return True, None, ""

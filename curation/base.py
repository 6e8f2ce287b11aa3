"""The stage model: small classes with declared column contracts, run by an adapter that
turns per-item exceptions into status rows (video2dataset / NeMo Curator style).

A row is a plain ``dict``. Every key a stage writes is declared in its ``fields`` with an Arrow
type (``curation.fields``); the adapter encodes each written value to that type, so rows hold
plain Python values (str, int, float, bool, None, lists and dicts of those) and are identical
across the local and Ray executors. ``pipelines/schema.py`` builds the shard schema from the
same declarations.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import signal
import sys
import threading
import time
import traceback
import types
import typing
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable

import pyarrow as pa

from curation.fields import EncodeError, Field, encode

Row = dict[str, Any]

ERROR_DETAIL_MAX = 2000


class Status(str, enum.Enum):
    OK = "ok"
    FILTERED = "filtered"
    FAILED = "failed"


class Reason(str, enum.Enum):
    """Every reason a row can carry. ``failed`` rows use the transient ones."""

    # input / probe
    NOT_FOUND = "not_found"
    UNREADABLE = "unreadable"
    NOT_A_FILE = "not_a_file"
    EMPTY_FILE = "empty_file"
    DECODE_ERROR = "decode_error"
    NO_VIDEO = "no_video"
    NO_AUDIO = "no_audio"
    TOO_SHORT = "too_short"
    TOO_SMALL = "too_small"
    TOO_LARGE = "too_large"  # frame pixels above the probe limit (decoding it could exhaust memory)
    BAD_ASPECT = "bad_aspect"
    # shots / motion / clips
    SHOT_TOO_SHORT = "shot_too_short"
    CAMERA_SHAKE = "camera_shake"
    NO_CLIP = "no_clip"
    # faces
    NO_FACE = "no_face"
    TOO_FEW_FACES = "too_few_faces"
    TOO_MANY_FACES = "too_many_faces"
    FACE_TOO_SMALL = "face_too_small"
    ORDER_UNSTABLE = "order_unstable"
    IDENTITY_SWAP = "identity_swap"
    # speech
    NO_SPEECH = "no_speech"
    OVERLAPPING_SPEECH = "overlapping_speech"
    TOO_MANY_SPEAKERS = "too_many_speakers"
    # sync
    LOW_SYNC = "low_sync"
    SYNC_OFFSET = "sync_offset"
    SYNC_NOT_DIAGONAL = "sync_not_diagonal"
    STATIC_MOUTH = "static_mouth"  # lips (nearly) frozen: the face does not talk
    # runner
    DUPLICATE = "duplicate"  # identical bytes to an earlier source of the run
    # adapter
    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    WORKER_DIED = "worker_died"  # the worker process running the source ended (native crash, kill)

    @property
    def transient(self) -> bool:
        return self in (Reason.TIMEOUT, Reason.OUT_OF_MEMORY, Reason.WORKER_DIED)


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0


# Row bookkeeping the adapter and ``reject`` write; the shard schema has a column for each.
ROW_FIELDS: dict[str, Field] = {
    "status": Field(pa.string(), None, "ok | filtered | failed"),
    "reason": Field(pa.string(), None, "curation.base.Reason value; null when ok"),
    "error_detail": Field(pa.string(), None, "why the row was rejected (exception tail for failures)"),
    "failed_stage": Field(pa.string(), None, "stage that rejected the row"),
}
# written by the adapter as {stage name: value}; typed per pipeline by pipelines.schema
STAMP_KEYS = ("stage_versions", "stage_seconds")


class StageConfigError(ValueError):
    """A pipeline config names an unknown parameter or breaks a column contract."""


def _check_param_types(stage: str, params: Any) -> None:
    """Each value must match its annotation (an int is a valid float); raises StageConfigError."""
    hints = typing.get_type_hints(type(params))
    for f in dataclasses.fields(params):
        value, hint = getattr(params, f.name), hints.get(f.name, Any)
        if not _matches(value, hint):
            raise StageConfigError(f"stage {stage!r}: parameter {f.name}={value!r} is not of type "
                                   f"{getattr(hint, '__name__', str(hint))}")
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(params, f.name, float(value))


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is not None:
        return isinstance(value, origin)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


class Stage:
    """One step of a curation pipeline.

    Subclasses set ``name``, ``version``, ``requires`` / ``produces`` (column names),
    ``resources`` and ``params`` (defaults, overridable from the pipeline YAML), and implement
    ``process(row) -> row | list[row]``; fan-out stages return several rows. ``setup()`` runs
    once per worker before the first batch (load models there). Stages do not catch their own
    exceptions: the adapter (``run_stage_batch``) does.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    requires: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()
    # Every key the stage writes (new or changed), with its Arrow type and unit. ``produces``
    # (the columns later stages may require) is a subset of it.
    fields: ClassVar[dict[str, Field]] = {}
    resources: ClassVar[Resources] = Resources()
    # Stages that load a model run in a Ray actor pool (setup once per actor), others as tasks.
    uses_model: ClassVar[bool] = False
    # Parameters: a dataclass (typed, defaults; preferred) or a dict of defaults. Either way the
    # stage reads them as attributes (self.min_duration_s) and the YAML overrides them by name.
    params: ClassVar[Any] = {}
    # Per-item wall-clock budget (seconds); exceeding it gives status=failed, reason=timeout.
    timeout_s: ClassVar[float | None] = 600.0

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        missing = [c for c in cls.produces if c not in cls.fields]
        if cls.fields and missing:
            raise TypeError(f"{cls.__name__}.produces names {missing} that its fields do not declare")

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Parameter defaults, from the ``params`` dataclass (or a plain dict)."""
        p = cls.params
        if dataclasses.is_dataclass(p):
            return {f.name: getattr(p(), f.name) for f in dataclasses.fields(p)}
        return dict(p)

    def __init__(self, **overrides: Any) -> None:
        known = self.param_defaults()
        unknown = set(overrides) - set(known) - {"timeout_s"}
        if unknown:
            raise StageConfigError(
                f"stage {self.name!r} has no parameter(s) {sorted(unknown)}; "
                f"known: {sorted(known)}"
            )
        if "timeout_s" in overrides:
            self.timeout_s = overrides.pop("timeout_s")
        if dataclasses.is_dataclass(self.params):
            # typed: the dataclass checks the values; self.<param> reads them (__getattr__)
            typed = self.params(**overrides)
            _check_param_types(self.name, typed)
            self.config: dict[str, Any] = {f.name: getattr(typed, f.name) for f in dataclasses.fields(typed)}
        else:
            self.config = {**known, **overrides}
        self._is_setup = False

    def __getattr__(self, item: str) -> Any:
        # parameters read as attributes: self.min_duration_s
        config = self.__dict__.get("config")
        if config is not None and item in config:
            return config[item]
        raise AttributeError(f"{type(self).__name__} has no attribute {item!r}")

    def check_upstream(self, upstream: dict[str, "Stage"]) -> None:
        """Check parameters that depend on an earlier stage (by name in ``upstream``); raise
        ``StageConfigError`` naming the fix. Called when the pipeline config is loaded."""

    def setup(self) -> None:
        """Load models / open resources; called once per worker."""

    def ensure_setup(self) -> None:
        if not self._is_setup:
            self.setup()
            self._is_setup = True

    def process(self, row: Row) -> Row | list[Row]:
        raise NotImplementedError

    def process_batch(self, rows: list[Row]) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            res = self.process(row)
            out.extend(res if isinstance(res, list) else [res])
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "requires": list(self.requires),
            "produces": list(self.produces),
            "resources": {"cpus": self.resources.cpus, "gpus": self.resources.gpus},
            "uses_model": self.uses_model,
            "config": dict(self.config),
        }


class Filter(Stage):
    """A stage that measures a row and keeps it or rejects it with a reason code.

    Implement ``measure(row) -> dict`` (columns to add) and ``keep(row) -> (bool, Reason|None,
    detail)``. Rejected rows keep their measurements so a rejects shard explains itself.
    """

    def measure(self, row: Row) -> Row:
        return {}

    def keep(self, row: Row) -> tuple[bool, Reason | None, str]:
        raise NotImplementedError

    def process(self, row: Row) -> Row:
        row = {**row, **self.measure(row)}
        ok, reason, detail = self.keep(row)
        if not ok:
            return reject(row, reason or Reason.EXCEPTION, detail, stage=self.name)
        return row


def reject(row: Row, reason: Reason, detail: str = "", stage: str = "") -> Row:
    """Return ``row`` marked filtered (or failed, for transient reasons) with ``reason``."""
    status = Status.FAILED if reason.transient else Status.FILTERED
    return {
        **row,
        "status": status.value,
        "reason": reason.value,
        "error_detail": (detail or "")[:ERROR_DETAIL_MAX],
        "failed_stage": stage or row.get("failed_stage"),
    }


def is_ok(row: Row) -> bool:
    return row.get("status", Status.OK.value) == Status.OK.value


class StageTimeout(Exception):
    pass


@contextmanager
def _time_limit(seconds: float | None):
    """Raise ``StageTimeout`` in the running code after ``seconds``.

    Main thread: SIGALRM (also interrupts blocking system calls). Other threads (Ray Data runs
    actor-pool stages in one): a timer raises the exception asynchronously in this thread, which
    takes effect at the next Python bytecode (a call blocked inside C code ends first; subprocess
    calls carry their own timeouts)."""
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread() and os.name == "posix":
        def _raise(signum, frame):
            raise StageTimeout(f"exceeded {seconds:.0f}s")

        old = signal.signal(signal.SIGALRM, _raise)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        return
    import ctypes

    tid = threading.get_ident()
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def _fire():
        with lock:
            if not state["done"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(StageTimeout))

    timer = threading.Timer(seconds, _fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["done"] = True
        timer.cancel()
        if state["fired"]:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), None)  # clear if not yet raised
            if sys.exc_info()[0] is not StageTimeout:
                raise StageTimeout(f"exceeded {seconds:.0f}s")


def _exception_row(row: Row, stage: Stage, exc: BaseException) -> Row:
    from curation.media import MediaError  # media errors name the file: a decode problem, not a bug

    if isinstance(exc, StageTimeout):
        reason = Reason.TIMEOUT
    elif isinstance(exc, MediaError):
        reason = Reason.DECODE_ERROR
    elif isinstance(exc, MemoryError):
        reason = Reason.OUT_OF_MEMORY
    else:
        reason = Reason.EXCEPTION
    detail = f"{type(exc).__name__}: {exc}\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]
    )
    return reject(row, reason, detail, stage=stage.name)


def _encode_output(stage: Stage, row: Row, known: set[str]) -> Row:
    """The one encoder: values of the keys ``stage`` declares become plain values of their Arrow
    type; a key that neither the input rows nor the stage's declaration knows is an error."""
    undeclared = sorted(k for k in row if k not in known and k not in stage.fields and k not in ROW_FIELDS
                        and k not in STAMP_KEYS)
    if undeclared:
        raise EncodeError(f"stage {stage.name!r} wrote undeclared key(s) {undeclared}; declare them in "
                          f"{type(stage).__name__}.fields")
    out = dict(row)
    for k, f in stage.fields.items():
        if k in out:
            out[k] = encode(out[k], f.type, f"{stage.name}.{k}")
    for k, f in ROW_FIELDS.items():
        if k in out:
            out[k] = encode(out[k], f.type, k)
    return out


def _encode_lenient(stage: Stage, row: Row, known: set[str]) -> Row:
    """What is left of a row whose encoding failed: undeclared keys dropped, values that cannot
    be encoded set to null (spans and ids survive, so the failed row stays unique)."""
    out = {}
    for k, v in row.items():
        f = stage.fields.get(k) or ROW_FIELDS.get(k)
        if f is None:
            if k in known or k in STAMP_KEYS:
                out[k] = v
            continue
        try:
            out[k] = encode(v, f.type, k)
        except EncodeError:
            out[k] = None
    return out


def _encode_all(stage: Stage, parents: list[Row], produced: list[Row]) -> list[Row]:
    known = set().union(*(r.keys() for r in parents)) if parents else set()
    out = []
    for r in produced:
        try:
            out.append(_encode_output(stage, r, known))
        except EncodeError as exc:
            out.append(_exception_row(_encode_lenient(stage, r, known), stage, exc))
    return out


def _stamp(rows: Iterable[Row], stage: Stage, seconds: float = 0.0) -> list[Row]:
    rows = list(rows)
    share = seconds / max(1, len(rows))  # so a stage's time sums to its wall time over rows
    out = []
    for r in rows:
        versions = dict(r.get("stage_versions") or {})
        versions[stage.name] = stage.version
        timing = dict(r.get("stage_seconds") or {})
        timing[stage.name] = round(timing.get(stage.name, 0.0) + share, 6)
        out.append({**r, "stage_versions": versions, "stage_seconds": timing})
    return out


def run_stage_batch(stage: Stage, rows: list[Row]) -> list[Row]:
    """The adapter: the only place that catches stage exceptions.

    Rows that are already rejected pass through untouched. The ok rows go to
    ``process_batch`` together; if that raises, each row is retried alone so that one bad item
    becomes one reject row and the others are kept.
    """
    stage.ensure_setup()
    done = [r for r in rows if not is_ok(r)]
    todo = [r for r in rows if is_ok(r)]
    if not todo:
        return rows
    t0 = time.perf_counter()
    try:
        with _time_limit(stage.timeout_s * len(todo) if stage.timeout_s else None):
            produced = stage.process_batch(todo)
        produced = _encode_all(stage, todo, produced)
        produced = _stamp(produced, stage, time.perf_counter() - t0)
    except (KeyboardInterrupt, SystemExit):
        raise
    except StageTimeout as exc:
        if len(todo) == 1:  # one timeout per item: a second full wait on the same item finds nothing new
            return done + _stamp([_exception_row(todo[0], stage, exc)], stage, time.perf_counter() - t0)
        produced = _retry_one_by_one(stage, todo)
    except BaseException:  # noqa: BLE001 - isolate the failing row below
        produced = _retry_one_by_one(stage, todo)
    # keep input order stable: rejected-before rows first, then this stage's output
    return done + produced


def _retry_one_by_one(stage: Stage, todo: list[Row]) -> list[Row]:
    """After a failed batch: each row alone (its own single timeout), so one bad item becomes
    one reject row and the others are kept."""
    produced = []
    for r in todo:
        t1 = time.perf_counter()
        try:
            with _time_limit(stage.timeout_s):
                res = stage.process(r)
            res = _encode_all(stage, [r], res if isinstance(res, list) else [res])
            produced.extend(_stamp(res, stage, time.perf_counter() - t1))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001
            produced.extend(_stamp([_exception_row(r, stage, exc)], stage, time.perf_counter() - t1))
    return produced


def check_contracts(stages: list[Stage], initial_columns: Iterable[str]) -> None:
    """Raise ``StageConfigError`` if a stage needs a column no earlier stage produces."""
    available = set(initial_columns)
    upstream: dict[str, Stage] = {}
    for st in stages:
        missing = [c for c in st.requires if c not in available]
        if missing:
            raise StageConfigError(
                f"stage {st.name!r} requires column(s) {missing} that no earlier stage produces "
                f"(available: {sorted(available)}); reorder the stages in the pipeline config"
            )
        st.check_upstream(dict(upstream))
        available.update(st.produces)
        upstream[st.name] = st

"""Training loop: flow matching on curated shards, checkpoint/resume, metrics.jsonl, DDP.

Distributed training uses torch DDP launched by ``torchrun`` (it sets RANK/WORLD_SIZE):

    torchrun --nproc_per_node 2 -m anytalker.cli train tiny --shards RUN --out OUT

Each rank draws its own batches (a pure function of seed, step and rank); rank 0 logs and
writes checkpoints. On CPU the process group uses gloo, on CUDA nccl.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from model.audio import build_frontend
from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, set_rng_state
from model.config import load_config
from model.data import ShardTrainingSource, StepBatches
from model.dit import AnyTalkerDiT
from model.flow import LOSS_T_FLOOR, FlowMatchingObjective, loss_diagnostics

log = logging.getLogger(__name__)


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, step, rank, 0xA7C4]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def build_model(cfg: dict, frontend) -> AnyTalkerDiT:
    torch.manual_seed(int(cfg.get("seed", 0)))
    return AnyTalkerDiT(cfg, frontend.feature_dim)


def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines past the resumed step (they belonged to the interrupted tail)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


def _summarise_diagnostics(records: list[dict]) -> dict:
    """Mean of each diagnostic over the first and the last fifth of the logged steps."""
    recs = [r for r in records if "audio_swap_gap" in r]
    if not recs:
        return {}
    k = max(1, len(recs) // 5)
    out = {}
    for key in ("diag_loss", "copy_reference", "copy_context", "copy_warped", "audio_swap_gap", "audio_swap_gap_t1",
                "audio_aux", "motion_loss", "motion_swap_gap", "motion_judge_loss"):
        if not all(key in r for r in recs):
            continue
        out[key] = {"first": round(float(np.mean([r[key] for r in recs[:k]])), 6),
                    "last": round(float(np.mean([r[key] for r in recs[-k:]])), 6)}
    out["logged_steps"] = len(recs)
    return out


def train(config: str | dict, shards: str | Path, out: str | Path, steps: int | None = None,
          resume: bool = False, overrides: dict | None = None, progress: bool = True,
          init: str | Path | None = None) -> dict:
    """Train from scratch, continue a run (``resume``: its own config, optimizer and step), or
    start a new run from another run's weights (``init``: e.g. stage 2 from stage 1; the
    checkpoint's config with ``overrides`` applied, a fresh optimizer, step 0)."""
    out = Path(out)
    ckpt_dir = out / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    rank, world, local_rank = _dist_env()
    blob = init_blob = None
    if resume and init:
        raise CheckpointError(f"{init}: --resume and --init exclude each other; --resume continues {last_path}, "
                              "--init starts a new run from another run's weights")
    if resume:
        if not last_path.exists():
            raise CheckpointError(f"{last_path}: nothing to resume; run without --resume to start a new run")
        if overrides:
            raise CheckpointError(f"{last_path}: --resume continues the run with its own config, so --set "
                                  f"{overrides} cannot apply; to change values start a new run from these "
                                  f"weights: --init {last_path} --out NEW_DIR --set ...")
        blob = load_checkpoint(last_path)
        cfg = blob["config"]  # the run's own config wins over the CONFIG argument
    elif init:
        init_blob = load_checkpoint(init)
        cfg = load_config(init_blob["config"], overrides)  # the architecture must match the weights
        if last_path.exists():
            raise CheckpointError(f"{last_path}: {out} already holds a run; pass a new --out for the run "
                                  f"started from {init} (or --resume to continue this one)")
    else:
        cfg = load_config(config, overrides)
    tr = cfg["train"]
    total_steps = int(steps if steps is not None else tr["steps"])
    seed = int(cfg.get("seed", 0))

    distributed = world > 1
    if distributed:
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")

    frontend = build_frontend(cfg["audio"])
    model = build_model(cfg, frontend).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(tr["lr"]), weight_decay=float(tr["weight_decay"]), betas=(0.9, 0.99))
    start_step = 0
    if blob is not None:
        model.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        start_step = int(blob["step"])
        set_rng_state(blob["rng"])
        log.info("resumed %s at step %d", last_path, start_step)
    elif init_blob is not None:
        try:
            model.load_state_dict(init_blob["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{init}: its weights do not fit the config with these --set values "
                                  f"(only training/data values may change, not model shapes): {str(e)[:300]}") from e
        log.info("initialised from %s (step %d of that run)", init, int(init_blob["step"]))
    mouth_weight = float(tr.get("mouth_weight", 1.0))
    t_floor = float(tr.get("loss_t_floor", LOSS_T_FLOOR))
    objective = FlowMatchingObjective(model, mouth_weight, t_floor, float(tr.get("audio_aux_weight", 0.0)),
                                      float(tr.get("motion_weight", 0.0)), float(tr.get("motion_audio_noise", 0.0)),
                                      float(tr.get("motion_judge_weight", 0.0)),
                                      tuple(int(s) for s in tr.get("motion_judge_seeds", (0, 1))),
                                      float(cfg["video"]["fps"]))
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        objective = DistributedDataParallel(objective, device_ids=[local_rank] if device.type == "cuda" else None)

    source = ShardTrainingSource(shards, cfg, frontend)
    motion_basis = None
    if model.motion is not None and blob is None and init_blob is None:
        # a new run fits the motion head's PCA basis on its training lips (a resumed or
        # initialised run keeps the checkpoint's basis: the head's outputs are coefficients of it)
        deforms = source.lip_deformations()
        if len(deforms) >= model.motion.basis_size:
            motion_basis = model.motion.fit_basis(deforms)
            log.info("motion head basis: %s", motion_basis)
        else:
            log.warning("%s: %d frames with lip landmarks: the motion head has no basis and predicts no motion",
                        shards, len(deforms))
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg, indent=2))
        (out / "data.json").write_text(json.dumps({"shards": str(shards), **source.describe(),
                                                   "audio_frontend": frontend.describe()}, indent=2))
        _truncate_metrics(out / "metrics.jsonl", start_step)
        _truncate_metrics(out / "motion_heldout.jsonl", start_step)
    loader = torch.utils.data.DataLoader(StepBatches(source, start_step + 1, total_steps, rank), batch_size=None,
                                         shuffle=False, num_workers=int(tr.get("num_workers", 0)))
    warmup, base_lr = int(tr.get("warmup_steps", 0)), float(tr["lr"])
    audio_dropout = float(tr.get("audio_dropout", 0.0))
    motion_batch_size = int(tr.get("motion_batch", 0))
    motion_seq = int(tr.get("motion_seq_frames", 48))
    # early stopping of the motion head (``train.motion_early_stop``): the head's state at the
    # checkpoint with the best held-out r (mean of window and span r; the last tenth of each training clip, never trained on;
    # not the benchmark's held-out audio) is the one the final checkpoint keeps; the DiT is the last step's
    early_stop = bool(tr.get("motion_early_stop", False))
    best_head: tuple[int, float, dict] | None = None
    ckpt_every, log_every = int(tr.get("checkpoint_every", 100)), int(tr.get("log_every", 1))
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
    metrics_file = open(out / "metrics.jsonl", "a") if rank == 0 else None
    step, last_loss = start_step, None
    logged: list[dict] = []
    # optional wall-clock budget (train.max_minutes): the run stops after the step that crosses
    # it and saves that step's checkpoint; the result says so (a time-boxed run, e.g. a benchmark)
    max_minutes = tr.get("max_minutes") if not distributed else None  # ranks could disagree on time
    t_run = time.perf_counter()
    stopped_by_budget = False
    t_data = time.perf_counter()
    try:
        batches = iter(loader)  # draws the loader's base seed from the global RNG
        if blob is not None:
            # restore the RNG after that draw: the resumed steps then see the same dropout masks
            # (the motion head's) as the interrupted run did
            set_rng_state(blob["rng"])
        for step, batch in enumerate(batches, start=start_step + 1):
            data_s = time.perf_counter() - t_data
            t0 = time.perf_counter()
            lr = base_lr * min(1.0, step / warmup) if warmup else base_lr
            for g in opt.param_groups:
                g["lr"] = lr
            batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            objective.train()
            extra = None
            if motion_batch_size and model.motion is not None:
                seqs = source.motion_sequences(step, rank, motion_batch_size, motion_seq,
                                               judge_audio=float(tr.get("motion_judge_weight", 0.0)) > 0)
                if seqs is not None:
                    extra = {k: v.to(device) for k, v in seqs.items()}
            loss = objective(batch, step_generator(seed, step, rank), audio_dropout, extra)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, float(tr.get("grad_clip", 1.0)))
            opt.step()
            loss_value = loss.detach()
            if distributed:
                import torch.distributed as dist

                dist.all_reduce(loss_value)
                loss_value /= world
            last_loss = float(loss_value)
            step_s = time.perf_counter() - t0
            if rank == 0:
                if step % log_every == 0 or step == total_steps or step == start_step + 1:
                    rec = {"step": step, "loss": round(last_loss, 6), "lr": lr, "grad_norm": round(float(grad_norm), 4),
                           "mode": batch["mode"], "data_s": round(data_s, 4), "step_s": round(step_s, 4),
                           "world_size": world, "time": time.time()}
                    judge_loss = getattr(getattr(objective, "module", objective), "last_judge_loss", None)
                    if judge_loss is not None:  # the sync judge's loss on the head's lips (train.motion_judge_weight)
                        rec["motion_judge_loss"] = round(float(judge_loss.detach()), 4)
                    # the same batch after the update: copy baselines and the audio-swap gap, with
                    # one fixed noise draw shared by all variants (diagnostics RNG: rank + 2**20)
                    diag = loss_diagnostics(model, batch, step_generator(seed, step, rank + 2 ** 20), mouth_weight,
                                            t_floor)
                    rec.update({("diag_loss" if k == "loss" else k): round(v, 6) for k, v in diag.items()})
                    logged.append(rec)
                    metrics_file.write(json.dumps(rec) + "\n")
                    metrics_file.flush()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{last_loss:.4f}", mode=batch["mode"][:6])
                over_budget = bool(max_minutes) and (time.perf_counter() - t_run) / 60 >= float(max_minutes)
                if step % ckpt_every == 0 or step == total_steps or over_budget:
                    _save(ckpt_dir, model, opt, step, cfg, frontend)
                    if model.motion is not None and source.motion_spans:
                        # the motion head's held-out trajectory (cheap: windows cached, no DiT pass)
                        from model.motion_eval import heldout_motion

                        held = heldout_motion(model, source)
                        with open(out / "motion_heldout.jsonl", "a") as f:
                            f.write(json.dumps({"step": step, **held}) + "\n")
                        # the criterion: mean of the window r and the whole-span r (the benchmark's
                        # items are seconds long; either alone rests on ~60 windows / ~35 spans)
                        r_held = (held.get("r_matched", float("nan")) + held.get("span_r_matched", float("nan"))) / 2
                        if early_stop and np.isfinite(r_held) and (best_head is None or r_held > best_head[1]):
                            best_head = (step, float(r_held), copy.deepcopy(model.motion.state_dict()))
            if max_minutes and (time.perf_counter() - t_run) / 60 >= float(max_minutes):
                stopped_by_budget = step < total_steps
                break
            t_data = time.perf_counter()
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
        if distributed:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
    diagnostics = _summarise_diagnostics(logged)
    motion_heldout = None
    motion_selected = None
    if rank == 0 and model.motion is not None:
        from model.motion_eval import heldout_motion

        if best_head is not None:
            last = heldout_motion(model, source)
            motion_selected = {"step": best_head[0], "criterion": round(best_head[1], 4),
                               "last_step_criterion": round((last.get("r_matched", float("nan"))
                                                             + last.get("span_r_matched", float("nan"))) / 2, 4)}
            if best_head[0] != step:
                model.motion.load_state_dict(best_head[2])
                _save(ckpt_dir, model, opt, step, cfg, frontend)
            log.warning("motion head: kept the state of step %d (held-out criterion %.3f; last step %s)", best_head[0],
                        best_head[1], motion_selected["last_step_criterion"])
        motion_heldout = heldout_motion(model, source)
        log.warning("motion head on held-out windows: %s", json.dumps(motion_heldout))
    if rank == 0 and diagnostics:
        gap = diagnostics["audio_swap_gap"]
        gap1 = diagnostics.get("audio_swap_gap_t1", {"first": float("nan"), "last": float("nan")})
        log.warning("audio-swap gap (loss with another sample's audio / own audio - 1): first %.2f %%, last %.2f %% "
                    "(mouth at t = 1: first %.2f %%, last %.2f %%); loss %.4f vs copy-reference %.4f, copy-context "
                    "%.4f (last fifth)", 100 * gap["first"], 100 * gap["last"], 100 * gap1["first"],
                    100 * gap1["last"], diagnostics["diag_loss"]["last"], diagnostics["copy_reference"]["last"],
                    diagnostics["copy_context"]["last"])
    return {"out": str(out), "step": step, "start_step": start_step, "loss": last_loss,
            "init": str(init) if init else None, "checkpoint": str(last_path), "data": source.describe(),
            "stopped_by_time_budget": stopped_by_budget, "train_minutes": round((time.perf_counter() - t_run) / 60, 2),
            "diagnostics": diagnostics, "motion_heldout": motion_heldout, "motion_basis": motion_basis,
            "motion_selected": motion_selected}


KEEP_CHECKPOINTS = 3


def _save(ckpt_dir: Path, model, opt, step: int, cfg: dict, frontend) -> None:
    path = save_checkpoint(ckpt_dir / f"step_{step:07d}.pt", model, opt, step, cfg, frontend.describe())
    tmp = ckpt_dir / f".last.pt.tmp-{os.getpid()}"
    shutil.copyfile(path, tmp)
    os.replace(tmp, ckpt_dir / "last.pt")
    for old in sorted(ckpt_dir.glob("step_*.pt"))[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)

"""``python -m bsgap.train ... --dry_run``: the resolved run, before running it.

Builds and compiles the train step exactly as the run would (so the layout an ``'auto'``
microbatch picks and the compiled step's memory per device are the real ones) and prints what
the run would do; the run directory is neither created nor changed.
"""
from __future__ import annotations

from bsgap.layout import bn_group_warning, describe_bn_group


def _mib(num_bytes) -> str:
    return "unknown (no memory analysis on this backend)" if num_bytes is None else \
        f"{num_bytes / 2**20:,.1f} MiB"


def describe(trainer) -> str:
    """Compile ``trainer``'s step (a ``Trainer`` made with ``dry_run=True``) and describe the run;
    releases the trainer."""
    if not trainer.trials:   # every run directory holds this config finished
        trainer.release()
        return "dry run: " + "; ".join(
            f"{w} already finished (status {s['status']})" for w, s in
            zip(trainer.workdirs, trainer.finished_summaries)) + "; nothing would run"
    try:
        trainer.compile()
    finally:
        trainer.release()
    c, r = trainer.config, trainer.resolved
    transfer, resident = trainer.data.transfer, trainer.resident
    lay = r.layout
    evals = r.total_steps // r.eval_every_steps + (r.total_steps % r.eval_every_steps != 0)
    schedule = c.schedule + (f", milestones at steps {list(r.milestone_steps)} (x{c.schedule_gamma})"
                             if r.milestone_steps else "")
    lines = [
        f"dry run: {c.model} on {c.dataset} ({r.num_train_examples:,} train / "
        f"{r.num_eval_examples:,} eval examples, {r.num_classes} classes)",
        f"  run directories: " + ", ".join(f"{t.workdir} ({mode})" for t, mode in
                                           zip(trainer.trials, trainer.modes)),
        f"  layout: B={c.batch_size} = {lay.num_devices} device{'s' if lay.num_devices != 1 else ''}"
        f" x {lay.accumulation_steps} "
        f"accumulation steps x microbatch {lay.microbatch} ({r.num_processes} process(es))",
        f"  BN: {describe_bn_group(lay, c.normalization, c.ghost_batch_size)} "
        f"(normalization={c.normalization!r})",
        f"  learning rate: {c.learning_rate:g} at B={c.reference_batch_size}, rule "
        f"{c.lr_scaling!r} x{r.lr_scale_factor:.4g} = {r.scaled_learning_rate:.6g} "
        f"({c.optimizer}, momentum {c.momentum:g}, weight decay {c.weight_decay:g})",
        f"  warmup: {r.warmup_steps} steps ({c.warmup_epochs:g} epochs) from "
        f"{r.warmup_start_factor:.4g} x the lr; schedule: {schedule}",
        f"  budget: {r.total_steps:,} steps = {r.epochs:.4g} epochs = {r.total_examples:,} "
        f"examples ({r.steps_per_epoch:.4g} steps per epoch)",
        f"  evaluation: every {r.eval_every_steps} steps ({r.eval_every_steps / r.steps_per_epoch:.3g}"
        f" epochs), {evals} evals; target accuracy {c.target_accuracy}"
        + (" (stops there)" if c.stop_at_target else "")
        + (f"; patience {c.patience_evals} evals" if c.patience_evals else ""),
        f"  checkpoints: every {c.checkpoint_every_steps} steps, keep {c.keep_checkpoints}; log "
        f"every {c.log_every_steps} steps",
        f"  compiled step: {_mib(trainer.step_bytes)} per device, compiled in "
        f"{trainer.compile_seconds:.1f}s ({trainer.trials_loop} over {trainer.num_trials} "
        f"trial(s), accumulation loop {trainer.accumulation_loop})",
        f"  input: images sent as {transfer.dtype}, normalized on the "
        f"{'device' if transfer.on_device else 'host'} ({transfer.reason}); kept on the devices: "
        f"{', '.join(k for k in ('train', 'eval') if resident[k]) or 'nothing'} "
        f"({_mib(resident['bytes_per_device'])} per device of {_mib(resident['limit_bytes'])})",
    ]
    warning = bn_group_warning(lay, c.normalization, c.ghost_batch_size)
    if warning:
        lines.append(f"  warning: {warning}")
    lines.append("  nothing was written (dry run)")
    return "\n".join(lines)

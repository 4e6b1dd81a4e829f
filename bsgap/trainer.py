"""The training loop: init or restore, steps, evaluation, early stopping, checkpoints, summary.

Timing (all wall-clock seconds, measured on process 0):
  * ``compile_seconds``: ahead-of-time compilation of the train step (and the memory search);
  * ``train_seconds``: time inside training-step intervals, excluding compilation, evaluation and
    checkpointing -- ``seconds_to_target`` is this clock at the first evaluation that reaches
    ``target_accuracy``;
  * ``examples_per_second``: steady state, over all log intervals except the first one of each
    process lifetime (which includes first-execution overhead).
Metrics are fetched from the devices only at log/eval/checkpoint boundaries, so steps dispatch
asynchronously in between.
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bsgap import logbook, parallel, run_config
from bsgap.checkpoint import Checkpointer, abstract_like
from bsgap.data import load_dataset_from_config
from bsgap.memory import choose_microbatch, device_memory_limit
from bsgap.models import create_model
from bsgap.optim import make_optimizer
from bsgap.scaling import schedule_factor_fn
from bsgap.step import (TrainState, init_key, init_noise_state, make_eval_step,
                        make_train_step)
from bsgap.workdir import check_workdir, plain_config

_MEAN_KEYS = ("train_loss", "train_accuracy", "grad_norm")
_LAST_KEYS = ("learning_rate", "b_simple", "noise_trace_cov", "noise_grad_norm_sq")


@dataclasses.dataclass
class HostState:
    """Trainer state that lives on the host; saved with every checkpoint as JSON."""

    status: str = "running"
    best_eval_accuracy: float | None = None
    best_eval_step: int | None = None
    final_eval_accuracy: float | None = None
    final_eval_loss: float | None = None
    evals_since_best: int = 0
    steps_to_target: int | None = None
    examples_to_target: int | None = None
    seconds_to_target: float | None = None
    train_seconds: float = 0.0
    steady_seconds: float = 0.0
    steady_examples: int = 0
    diverged_at_step: int | None = None
    pending: dict = dataclasses.field(default_factory=dict)  # sums since the last metrics record


def _say(message: str) -> None:
    if parallel.is_main_process():
        from tqdm import tqdm

        tqdm.write(f"[bsgap] {message}", file=sys.stderr)


def _environment(num_devices: int) -> dict:
    import flax
    import optax

    return {"num_devices": num_devices, "num_processes": jax.process_count(),
            "platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind,
            "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "python": platform.python_version()}


class Trainer:
    """One run: ``Trainer(config, workdir).run()`` returns the summary dict."""

    def __init__(self, config, workdir: str):
        run_config.validate(config)
        self.config, self.workdir = config, os.path.abspath(workdir)
        self.mode = check_workdir(self.workdir, config)
        # Every process decides new/resume before process 0 creates files in the workdir.
        parallel.barrier("bsgap: workdir checked")
        self.num_devices = parallel.resolve_num_devices(config.num_devices)
        self.data = load_dataset_from_config(config, process_count=jax.process_count())
        self.resolved = run_config.resolve(
            config, num_devices=self.num_devices, num_processes=jax.process_count(),
            num_train_examples=self.data.train.num_examples,
            num_eval_examples=self.data.eval.num_examples, num_classes=self.data.num_classes)
        self.main = parallel.is_main_process()

    # ----------------------------------------------------------------------------- setup
    def _build(self):
        c, r = self.config, self.resolved
        self.model = create_model(
            c.model, num_classes=r.num_classes, normalization=c.normalization,
            ghost_batch_size=r.layout.bn_group if c.normalization == "ghost" else None,
            dropout_rate=c.dropout_rate, dtype=c.dtype, **dict(c.model_kwargs))
        self.schedule_factor = schedule_factor_fn(
            schedule=c.schedule, total_steps=r.total_steps, warmup_steps=r.warmup_steps,
            warmup_start_factor=r.warmup_start_factor, milestones=r.milestone_steps,
            gamma=c.schedule_gamma, poly_power=c.poly_power)
        self.tx = make_optimizer(
            name=c.optimizer, peak_lr=r.scaled_learning_rate, schedule_factor=self.schedule_factor,
            momentum=c.momentum, weight_decay=c.weight_decay, decay_all=c.decay_all_params)
        self.mesh = parallel.make_mesh(self.num_devices)
        sample = jnp.asarray(self.data.sample_images(r.layout.bn_group or 1))
        variables = self.model.init(init_key(c.seed), sample, train=False)
        params = variables["params"]
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                           batch_stats=variables.get("batch_stats", {}),
                           opt_state=self.tx.init(params), noise=init_noise_state())
        # Host copies first: leaves that share one buffer (e.g. equal zeros) cannot both be donated.
        self.state = parallel.replicate(self.mesh, jax.tree_util.tree_map(np.array, state))
        self.eval_fn = parallel.data_parallel(
            make_eval_step(model=self.model, num_classes=r.num_classes), self.mesh)

    def _compile(self):
        c, r = self.config, self.resolved
        spec = self.data.element_spec  # {name: (per-example shape, dtype)}
        sharding = parallel.batch_sharded(self.mesh)

        def compile_for(layout):
            local = make_train_step(model=self.model, tx=self.tx, layout=layout,
                                    num_classes=r.num_classes, seed=c.seed,
                                    label_smoothing=c.label_smoothing,
                                    noise_ema_decay=c.noise_ema_decay,
                                    schedule_factor=self.schedule_factor)
            fn = parallel.data_parallel(local, self.mesh, donate_state=True)
            batch = {k: jax.ShapeDtypeStruct((c.batch_size,) + tuple(shape), dtype,
                                             sharding=sharding)
                     for k, (shape, dtype) in spec.items()}
            return fn.lower(self.state, batch).compile()

        start = time.perf_counter()
        limit = c.memory_limit_bytes or device_memory_limit()
        layout, self.step_fn, self.step_bytes = choose_microbatch(
            r.layout, compile_for, auto=c.microbatch_size == "auto", limit_bytes=limit, log=_say)
        self.resolved = dataclasses.replace(r, layout=layout)
        self.compile_seconds = time.perf_counter() - start

    # ----------------------------------------------------------------------------- records
    def _write_config(self):
        if not self.main:
            return
        os.makedirs(self.workdir, exist_ok=True)
        logbook.write_json_atomic(os.path.join(self.workdir, logbook.CONFIG_FILE), {
            "config": plain_config(self.config), "resolved": self.resolved.to_json(),
            "environment": _environment(self.num_devices),
            "compile_seconds": self.compile_seconds, "step_bytes_per_device": self.step_bytes})

    def _summary(self, host: HostState, step: int) -> dict:
        c, r = self.config, self.resolved
        return {
            "status": host.status, "steps": step, "examples": step * c.batch_size,
            "epochs": step * c.batch_size / r.num_train_examples, "total_steps": r.total_steps,
            "batch_size": c.batch_size, "lr_scaling": c.lr_scaling,
            "learning_rate": r.scaled_learning_rate, "seed": c.seed,
            "best_eval_accuracy": host.best_eval_accuracy, "best_eval_step": host.best_eval_step,
            "final_eval_accuracy": host.final_eval_accuracy,
            "final_eval_loss": host.final_eval_loss, "target_accuracy": c.target_accuracy,
            "steps_to_target": host.steps_to_target,
            "examples_to_target": host.examples_to_target,
            "seconds_to_target": host.seconds_to_target,
            "examples_per_second": (host.steady_examples / host.steady_seconds
                                    if host.steady_seconds > 0 else None),
            "train_seconds": host.train_seconds, "compile_seconds": self.compile_seconds,
            "diverged_at_step": host.diverged_at_step,
        }

    # ----------------------------------------------------------------------------- loop pieces
    def evaluate(self, state) -> dict:
        totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
        for batch in self.data.eval_batches(self.config.eval_batch_size, jax.process_index(),
                                            jax.process_count()):
            sums = jax.device_get(self.eval_fn(state, parallel.global_batch(self.mesh, batch)))
            for k in totals:
                totals[k] += float(sums[k])
        count = int(round(totals["count"]))
        return {"loss": totals["loss_sum"] / count, "accuracy": totals["correct"] / count,
                "num_examples": count}

    def _flush(self, host: HostState, fetched: list[dict], step: int, interval_seconds: float,
               logbook_: logbook.Logbook, first_interval: bool) -> dict | None:
        """Fold fetched step metrics into the pending sums; write a record at log steps."""
        c = self.config
        pend = host.pending
        for i, m in enumerate(fetched):
            loss = float(m["train_loss"])
            if not math.isfinite(loss):
                host.status = "diverged"
                host.diverged_at_step = step - len(fetched) + i + 1
                return None
            pend["count"] = pend.get("count", 0) + 1
            for k in _MEAN_KEYS:
                pend[k] = pend.get(k, 0.0) + float(m[k])
            for k in _LAST_KEYS:
                if k in m:
                    pend[k] = float(m[k])
        pend["seconds"] = pend.get("seconds", 0.0) + interval_seconds
        host.train_seconds += interval_seconds
        if not first_interval:
            host.steady_seconds += interval_seconds
            host.steady_examples += len(fetched) * c.batch_size
        if step % c.log_every_steps and step != self.resolved.total_steps:
            return None
        n = pend.pop("count")
        seconds = pend.pop("seconds")
        record = {"step": step, "examples": step * c.batch_size,
                  "epoch": step * c.batch_size / self.resolved.num_train_examples,
                  "examples_per_second": n * c.batch_size / seconds if seconds > 0 else None}
        for k in _MEAN_KEYS:
            record[k] = pend.pop(k) / n
        record.update({k: pend.pop(k) for k in _LAST_KEYS if k in pend})
        logbook_.train(record)
        return record

    def _after_eval(self, host: HostState, step: int, result: dict) -> None:
        c = self.config
        acc = result["accuracy"]
        host.final_eval_accuracy, host.final_eval_loss = acc, result["loss"]
        if host.best_eval_accuracy is None or acc > host.best_eval_accuracy:
            host.best_eval_accuracy, host.best_eval_step, host.evals_since_best = acc, step, 0
        else:
            host.evals_since_best += 1
        if c.target_accuracy is not None and host.steps_to_target is None \
                and acc >= c.target_accuracy:
            host.steps_to_target, host.examples_to_target = step, step * c.batch_size
            host.seconds_to_target = host.train_seconds
            if c.stop_at_target:
                host.status = "target_reached"
        if c.patience_evals and host.evals_since_best >= c.patience_evals \
                and host.status == "running":
            host.status = "early_stopped"

    # ----------------------------------------------------------------------------- run
    def run(self) -> dict:
        c, r = self.config, self.resolved
        self._build()
        self._compile()
        r = self.resolved
        checkpointer = Checkpointer(self.workdir, max_to_keep=c.keep_checkpoints)
        host, step = HostState(), 0
        latest = checkpointer.latest_step() if self.mode == "resume" else None
        if latest is not None:
            self.state, meta = checkpointer.restore(latest, abstract_like(self.state))
            host = HostState(**meta)
            step = latest
            if host.status != "running":
                _say(f"run in {self.workdir} already finished ({host.status}); nothing to do")
                checkpointer.close()
                return logbook.read_json(os.path.join(self.workdir, logbook.SUMMARY_FILE))
            _say(f"resuming from the checkpoint at step {step}")
        if self.main:
            os.makedirs(self.workdir, exist_ok=True)
            for name in (logbook.METRICS_FILE, logbook.EVAL_FILE):
                logbook.truncate_jsonl(os.path.join(self.workdir, name), step)
        self._write_config()
        lay = r.layout
        _say(f"{c.model} on {c.dataset}: B={c.batch_size} = {lay.num_devices} devices x "
             f"{lay.accumulation_steps} microbatches x {lay.microbatch} (BN group {lay.bn_group});"
             f" lr {r.scaled_learning_rate:.4g} ({c.lr_scaling}); {r.total_steps} steps "
             f"({r.epochs:.2f} epochs); compiled in {self.compile_seconds:.1f}s")

        book = logbook.Logbook(self.workdir, enabled=self.main, tensorboard=c.tensorboard)
        stream = self.data.train_stream(c.batch_size, c.seed, jax.process_index(),
                                        jax.process_count())
        from tqdm import tqdm

        bar = tqdm(total=r.total_steps, initial=step, unit="step", file=sys.stderr,
                   disable=not (c.progress_bar and self.main), dynamic_ncols=True)
        pending, first_interval = [], True
        t_last = time.perf_counter()
        while step < r.total_steps and host.status == "running":
            self.state, metrics = self.step_fn(
                self.state, parallel.global_batch(self.mesh, stream.batch(step)))
            pending.append(metrics)
            step += 1
            do_eval = step % r.eval_every_steps == 0 or step == r.total_steps
            do_ckpt = (c.checkpoint_every_steps and step % c.checkpoint_every_steps == 0)
            if not (step % c.log_every_steps == 0 or do_eval or do_ckpt
                    or step == r.total_steps):
                continue
            fetched = jax.device_get(pending)
            now = time.perf_counter()
            record = self._flush(host, fetched, step, now - t_last, book, first_interval)
            bar.update(len(pending))
            pending, first_interval = [], False
            if host.status == "diverged":
                _say(f"non-finite loss at step {host.diverged_at_step}: stopping (diverged)")
                break
            if record is not None:
                bar.set_postfix(loss=f"{record['train_loss']:.4f}",
                                acc=f"{record['train_accuracy']:.3f}",
                                ex_s=f"{record['examples_per_second'] or 0:,.0f}")
            if do_eval:
                result = self.evaluate(self.state)
                book.eval({"step": step, "examples": step * c.batch_size,
                           "split": c.eval_split, **result})
                self._after_eval(host, step, result)
                bar.set_postfix_str(f"eval acc {result['accuracy']:.4f}", refresh=True)
            if step == r.total_steps and host.status == "running":
                host.status = "complete"
            if do_ckpt or host.status != "running":
                checkpointer.save(step, self.state, dataclasses.asdict(host))
            t_last = time.perf_counter()
        bar.close()
        if host.status == "diverged":
            checkpointer.wait()
        checkpointer.close()
        summary = self._summary(host, step)
        book.summary(summary)
        book.close()
        _say(f"{summary['status']}: best eval accuracy {summary['best_eval_accuracy']}, "
             f"{summary['examples_per_second'] or 0:,.0f} examples/s; run in {self.workdir}")
        return summary


def train(config, workdir: str) -> dict:
    return Trainer(config, workdir).run()


def final_params(workdir: str):
    """Host copies of the parameters of the latest checkpoint (tests, analysis)."""
    from bsgap.restore import load_run

    return load_run(workdir, with_data=False).params

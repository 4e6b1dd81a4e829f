"""The training loop: init or restore, steps, evaluation, early stopping, checkpoints, summary.

One ``Trainer`` runs K >= 1 *trials* that share the model, dataset, batch layout and budget and
differ only in per-trial hyperparameters (``TRIAL_FIELDS``: learning rate and its scaling rule,
momentum, weight decay, warmup, seed, data seed, stopping rules). Their states are stacked on a
leading trial axis and one compiled program steps them all (``vmap``, or a ``lax.map`` loop on the
CPU, inside the per-device ``shard_map`` step; ``bsgap.trials.choose_trials_loop``). Each trial
keeps its own run directory, exactly as if it had run alone: config.json, metrics.jsonl,
eval.jsonl, summary.json and its own checkpoints (its slice of the stacked state). A trial that
diverges or stops is frozen on the device while the others go on. A plain run is the K = 1 case.

Timing (wall-clock seconds, measured on process 0, shared by the trials of one program):
  * ``compile_seconds``: ahead-of-time compilation of the train and eval steps (and the memory
    search);
  * ``train_seconds``: time inside training-step intervals, excluding compilation, evaluation and
    checkpointing -- ``seconds_to_target`` is this clock at the first evaluation that reaches
    ``target_accuracy``;
  * ``examples_per_second``: steady state, over all log intervals except the first one of each
    process lifetime (which includes first-execution overhead); with K trials, per trial.
Metrics are fetched from the devices only at log/eval/checkpoint boundaries, so steps dispatch
asynchronously in between. Building and compiling the programs is ``bsgap.trainer_build``; what is
written to and read from run directories, ``bsgap.run_records`` (both mixins of ``Trainer``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bsgap import logbook, parallel, run_config, run_lock
from bsgap.accumulation import resolve_accumulation_loop
from bsgap.agreement import decided_by_process_0
from bsgap.checkpoint import Checkpointer
from bsgap.data import load_dataset_from_config
from bsgap.device_prefetch import DevicePrefetcher
from bsgap.device_resident import ResidentTrainSplit
from bsgap.host_state import HostState, flush_metrics, update_after_eval
from bsgap.interrupt import stop_on_signals
from bsgap.jax_settings import apply_jax_settings
from bsgap.layout import bn_group_warning, describe_bn_group
from bsgap.memory import QUEUED_INPUT_BATCHES, device_memory_limit, require_memory_limit
from bsgap.models.conv_grad import resolve_conv_gradients
from bsgap.race import check_race, stop_outpaced
from bsgap.run_records import RunRecords, say
from bsgap.trainer_build import ProgramBuilder
from bsgap.trial_fields import TRIAL_FIELDS, check_shareable  # noqa: F401 (re-exported)
from bsgap.trials import choose_trials_loop, take_trial
from bsgap.workdir import WorkdirError, refuse_url_workdir, workdir_state


def data_seed(config) -> int:
    return config.seed if config.get("data_seed") is None else config.data_seed


@dataclasses.dataclass
class Trial:
    config: object
    workdir: str
    resolved: run_config.Resolved
    host: HostState = dataclasses.field(default_factory=HostState)
    book: logbook.Logbook | None = None
    checkpointer: Checkpointer | None = None
    start_step: int = 0
    summary: dict | None = None

    @property
    def running(self) -> bool:
        return self.host.status == "running"


class Trainer(ProgramBuilder, RunRecords):
    """``Trainer(config, workdir).run()`` for one run; ``Trainer.for_trials([(config, dir), ...])
    .run_all()`` for K trials in one compiled program."""

    # Global batches made ahead in a background thread (bsgap/device_prefetch.py); 0: in the loop.
    device_prefetch = QUEUED_INPUT_BATCHES

    def __init__(self, config, workdir: str, *, accumulation_loop: str = "auto",
                 conv_gradients: str = "auto", dry_run: bool = False):
        self._setup([(config, workdir)], accumulation_loop=accumulation_loop,
                    conv_gradients=conv_gradients, dry_run=dry_run)

    @classmethod
    def for_trials(cls, specs, trials_loop: str = "auto", *, accumulation_loop: str = "auto",
                   conv_gradients: str = "auto", dry_run: bool = False,
                   race_to_target: bool = False):
        """``trials_loop``: 'vmap', 'map' or 'auto' (map on the CPU, and for conv models on a GPU;
        ``choose_trials_loop``).
        ``race_to_target``: the trials race to their (common) target accuracy -- at the first
        evaluation where one has reached it, every trial still running is stopped
        (``early_stopped``, its ``stop_reason`` names the winner): none of them can reach it in
        fewer steps any more. Needs ``stop_at_target`` and the same ``target_accuracy`` and
        ``eval_every_steps`` in every trial (refused otherwise, before anything is loaded).
        ``accumulation_loop`` (bsgap/accumulation.py) and ``conv_gradients``
        (bsgap/models/conv_grad.py) choose how the step computes, never what: 'auto' is the
        measured fastest for the platform and layout. ``dry_run``: neither lock nor create the
        run directories (bsgap/dry_run.py describes the run; ``run_all`` is refused)."""
        specs = list(specs)
        if race_to_target:
            check_race(specs)
        trainer = cls.__new__(cls)
        trainer._setup(specs, trials_loop, accumulation_loop=accumulation_loop,
                       conv_gradients=conv_gradients, dry_run=dry_run)
        trainer.race_to_target = race_to_target
        return trainer

    def _setup(self, specs, trials_loop: str = "auto", *, accumulation_loop: str = "auto",
               conv_gradients: str = "auto", dry_run: bool = False):
        self.dry_run, self.race_to_target = dry_run, False
        if not specs:
            raise run_config.ConfigError("no trials given")
        platform = jax.devices()[0].platform
        self.trials_loop, self.trials_loop_reason = choose_trials_loop(
            trials_loop, platform, len(specs), model=specs[0][0].get("model"))
        self.conv_gradients = resolve_conv_gradients(conv_gradients, platform)
        resolve_accumulation_loop(accumulation_loop, platform, 1)  # a bad name: refused now
        self.accumulation_request = accumulation_loop
        for config, _ in specs:
            run_config.validate(config)
        configs = [c for c, _ in specs]
        check_shareable(configs)
        for _, w in specs:
            refuse_url_workdir(w)
        # Precision and compilation cache, process-wide, before anything is compiled.
        self.jax_settings = apply_jax_settings(configs[0])
        workdirs = [os.path.abspath(w) for _, w in specs]
        if len(set(workdirs)) != len(workdirs):
            raise WorkdirError(f"two trials share a workdir: {workdirs}")
        # One process per run directory (process 0 locks for all): held until run_all ends.
        self._locks = []
        try:
            if parallel.is_main_process() and not dry_run:
                for w in workdirs:
                    self._locks.append(run_lock.acquire(w))
            self._setup_locked(configs, workdirs, platform, accumulation_loop)
        except BaseException:
            self._release_locks(undo_create=True)   # a refused run leaves no new directory
            raise

    def _setup_locked(self, configs, workdirs, platform, accumulation_loop):
        # Process 0 decides new / resume / finished for every trial and the others follow: their
        # view of a shared filesystem may lag behind (bsgap/agreement.py). It is a barrier too:
        # every process has its answer before process 0 creates files in the workdirs.
        decided = decided_by_process_0(
            lambda: [workdir_state(w, c) for c, w in zip(configs, workdirs)])
        self.modes = [d["mode"] for d in decided]
        self.finished_summaries = [d["summary"] for d in decided]
        self._num_specs = len(workdirs)
        self.workdirs = workdirs
        self.config = configs[0]
        self.main = parallel.is_main_process()
        if all(s is not None for s in self.finished_summaries):
            self.trials = []   # every trial finished before: nothing to load or compile
            return
        self.num_devices = parallel.resolve_num_devices(self.config.num_devices)
        # The per-device limit of every process alike (a collective on several processes); 'auto'
        # without one is refused now, before the data is loaded or anything compiled.
        self.memory_limit = self.config.memory_limit_bytes or device_memory_limit()
        require_memory_limit(self.config.microbatch_size == "auto", self.memory_limit, platform)
        self.data = load_dataset_from_config(self.config, jax.process_count())
        self.trials = []
        for config, workdir in zip(configs, workdirs):
            resolved = run_config.resolve(
                config, num_devices=self.num_devices, num_processes=jax.process_count(),
                num_train_examples=self.data.train.num_examples,
                num_eval_examples=self.data.eval.num_examples, num_classes=self.data.num_classes)
            self.trials.append(Trial(config, workdir, resolved))
        self.resolved = self.trials[0].resolved
        if self.config.microbatch_size != "auto":  # 'none' with several microbatches: refused now
            resolve_accumulation_loop(accumulation_loop, platform,
                                      self.resolved.layout.accumulation_steps)
        self.workdir = workdirs[0]
        self.shared_data = len({data_seed(c) for c in configs}) == 1

    @property
    def num_trials(self) -> int:
        return self._num_specs

    # ----------------------------------------------------------------------------- state slices
    def trial_state(self, k: int = 0):
        """Trial k's state (no trial axis), on the devices (one jitted gather for all leaves:
        leaf by leaf, each shape compiles its own gather)."""
        return take_trial(self.state, jnp.asarray(k, jnp.int32))

    def _set_trial_state(self, k: int, trial_state) -> None:
        self.state = jax.tree_util.tree_map(lambda full, x: full.at[k].set(x), self.state,
                                            trial_state)

    def _freeze(self, k: int) -> None:
        self.state = self.state.replace(alive=self.state.alive.at[k].set(False))

    # ----------------------------------------------------------------------------- records
    def evaluate(self, state) -> list[dict]:
        """Loss and accuracy of every trial over the whole eval split (padded + masked)."""
        step = self.eval_step if self.eval_step is not None else self.eval_fn

        def device_batches():
            for batch in self.data.eval_batches(self.config.eval_batch_size, jax.process_index(),
                                                jax.process_count(), wire=True):
                yield parallel.global_batch(self.mesh, batch)

        resident = getattr(self, "resident", {}).get("eval")
        sums = None
        for batch in (self._resident_eval.batches(device_batches) if resident
                      else device_batches()):
            batch_sums = step(state, batch)
            # Summed on the devices (float32: exact counts up to 2^24 examples), fetched once.
            sums = batch_sums if sums is None else _add_sums(sums, batch_sums)
        sums = jax.device_get(sums)
        totals = np.stack([np.asarray(sums[k], np.float64)
                           for k in ("loss_sum", "correct", "count")])
        count = int(round(totals[2, 0]))
        return [{"loss": float(totals[0, k] / count), "accuracy": float(totals[1, k] / count),
                 "num_examples": count} for k in range(self.num_trials)]

    # ----------------------------------------------------------------------------- run
    def run(self) -> dict:
        if self.num_trials != 1:
            raise ValueError("run() is for one trial; use run_all() for several")
        return self.run_all()[0]

    def release(self) -> None:
        """Drop the run-directory lock of a Trainer that will not ``run`` (``run_all`` drops it
        itself); a directory it created holding nothing else is removed."""
        self._release_locks(undo_create=True)

    def _release_locks(self, undo_create: bool = False) -> None:
        for lock in self._locks:
            lock.release(undo_create=undo_create)
        self._locks = []

    def run_all(self) -> list[dict]:
        """Run every trial to its end; on SIGINT / SIGTERM stop after the current step with a
        checkpoint there and raise ``bsgap.interrupt.Interrupted``."""
        if self.dry_run:
            raise ValueError("this Trainer was made with dry_run=True: it describes a run, it "
                             "does not run one")
        try:
            with stop_on_signals() as self._signals, contextlib.ExitStack() as self._exits:
                out = self._run_all()
        except BaseException:
            self._release_locks(undo_create=True)
            raise
        self._release_locks()
        return out

    def _run_all(self) -> list[dict]:
        c = self.config
        if not self.trials:   # all finished (process 0's summaries: _setup_locked)
            say("every trial already finished; nothing to do")
            return list(self.finished_summaries)
        self._build()
        self._compile()
        self._restore()
        active = [t for t in self.trials if t.running]
        if not active:
            say("every trial already finished; nothing to do")
            return self._finish(self.trials[0].start_step)
        step = active[0].start_step
        total = self.resolved.total_steps
        for trial in active:
            if trial.start_step:
                say(f"{trial.workdir}: resuming from the checkpoint at step {trial.start_step}")
            if self.main:
                os.makedirs(trial.workdir, exist_ok=True)
                for name in (logbook.METRICS_FILE, logbook.EVAL_FILE):
                    logbook.truncate_jsonl(os.path.join(trial.workdir, name), step)
            self._write_config(trial)
            trial.book = logbook.Logbook(trial.workdir, enabled=self.main,
                                         tensorboard=c.tensorboard, start_step=step)
        self._announce()
        streams = [self.data.train_stream(c.batch_size, data_seed(t.config), jax.process_index(),
                                          jax.process_count(), wire=True)
                   for t in (self.trials[:1] if self.shared_data else self.trials)]
        from tqdm import tqdm

        # leave=False: the closing summary line replaces the bar (left, it was printed twice).
        bar = tqdm(total=total, initial=step, unit="step", file=sys.stderr, leave=False,
                   disable=not (c.progress_bar and self.main), dynamic_ncols=True)
        self._postfix = {}   # the bar's latest train loss/accuracy/examples/s and eval accuracy
        pending, first_interval = [], True

        device_batch = self.device_batch_fn(streams)
        if self.device_prefetch:   # made in a background thread, this many steps ahead
            device_batch = self._exits.enter_context(DevicePrefetcher(
                device_batch, step, total, depth=self.device_prefetch)).get
        t_last = time.perf_counter()
        while step < total and any(t.running for t in self.trials):
            self.state, metrics = self.step_fn(self.state, device_batch(step))
            pending.append(metrics)
            step += 1
            stop = self._signals.requested
            do_eval = step % self.resolved.eval_every_steps == 0 or step == total
            do_ckpt = (bool(c.checkpoint_every_steps) and step % c.checkpoint_every_steps == 0
                       or stop is not None)
            if not (step % c.log_every_steps == 0 or do_eval or do_ckpt or step == total):
                continue
            fetched = jax.device_get(pending)
            seconds = time.perf_counter() - t_last
            bar.update(len(pending))
            self._boundary(fetched, step, seconds, first_interval, do_eval, do_ckpt, bar)
            pending, first_interval = [], False
            t_last = time.perf_counter()
            if stop is not None and any(t.running for t in self.trials):
                bar.close()
                self._interrupted(stop, step)
        bar.close()
        return self._finish(step)

    def device_batch_fn(self, streams):
        """``device_batch(step)``: the global batch of ``step`` on the devices, as the loop feeds
        the step, from the ``streams`` (one per data order, ``wire=True``): this process's rows
        made into global arrays, or, where the train split stays on the devices, only their
        indices sent and the rows gathered there (bsgap/device_resident.py)."""
        resident = (ResidentTrainSplit(self.mesh, self.data.train.wire_arrays, self._batch_spec())
                    if self.resident["train"] else None)

        def device_batch(step):
            if resident is not None:   # only the indices travel; the devices gather the rows
                return resident.batch(streams[0].indices(step) if self.shared_data else
                                      np.stack([s.indices(step) for s in streams]))
            host_batch = (streams[0].batch(step) if self.shared_data else
                          jax.tree_util.tree_map(lambda *xs: np.stack(xs),
                                                 *[s.batch(step) for s in streams]))
            return parallel.global_batch(self.mesh, host_batch, self._batch_spec())

        return device_batch

    def _announce(self):
        c, r = self.config, self.resolved
        lay = r.layout
        trials = f"; {self.num_trials} trials in one program" if self.num_trials > 1 else ""
        devices = f"{lay.num_devices} device{'s' if lay.num_devices != 1 else ''}"
        say(f"{c.model} on {c.dataset}: B={c.batch_size} = {devices} x "
            f"{lay.accumulation_steps} microbatches x {lay.microbatch} "
            f"({describe_bn_group(lay, c.normalization, c.ghost_batch_size)});"
            f" lr {r.scaled_learning_rate:.4g} ({c.lr_scaling}); {r.total_steps} steps "
            f"({r.epochs:.2f} epochs); compiled in {self.compile_seconds:.1f}s{trials}")
        warning = bn_group_warning(lay, c.normalization, c.ghost_batch_size)
        if warning:
            say(f"warning: {warning}")

    def _after_eval(self, trial, step: int, result: dict) -> None:
        """A subclass's rule for stopping ``trial`` after its evaluation at ``step`` (set
        ``trial.host.status``); none here."""

    def _boundary(self, fetched, step, seconds, first_interval, do_eval, do_ckpt, bar):
        """Log, evaluate, stop and checkpoint the running trials at a fetch boundary."""
        c, total = self.config, self.resolved.total_steps
        running = [(k, t) for k, t in enumerate(self.trials) if t.running]
        for k, trial in running:
            mine = [jax.tree_util.tree_map(lambda x: x[k], m) for m in fetched]
            record = flush_metrics(trial.host, mine, step, seconds, first_interval,
                                   batch_size=c.batch_size, log_every=c.log_every_steps,
                                   total_steps=total,
                                   num_train_examples=trial.resolved.num_train_examples)
            if record is not None:
                trial.book.train(record)
                if k == 0:
                    self._postfix.update(loss=f"{record['train_loss']:.4f}",
                                         acc=f"{record['train_accuracy']:.3f}",
                                         ex_s=f"{record['examples_per_second'] or 0:,.0f}")
                    bar.set_postfix(self._postfix, refresh=False)
            if trial.host.status == "diverged":
                say(f"{trial.workdir}: non-finite loss at step {trial.host.diverged_at_step}: "
                    "diverged")
        if do_eval:
            live = [(k, t) for k, t in running if t.running]
            results = self.evaluate(self.state) if live else []
            for k, trial in live:
                trial.book.eval({"step": step, "examples": step * c.batch_size,
                                 "split": c.eval_split, **results[k]})
                update_after_eval(trial.host, trial.config, step, results[k])
                self._after_eval(trial, step, results[k])
            if live:
                self._postfix["eval_acc"] = f"{results[live[0][0]]['accuracy']:.4f}"
                bar.set_postfix(self._postfix, refresh=True)
        if self.race_to_target and step < total:   # at the end the others are 'complete'
            stop_outpaced(self.trials, step)
        for k, trial in running:
            if step == total and trial.running:
                trial.host.status = "complete"
            if not trial.running:
                self._freeze(k)
            if trial.host.status != "diverged" and (do_ckpt or not trial.running):
                trial.checkpointer.save(step, self.trial_state(k), dataclasses.asdict(trial.host))
            if not trial.running:
                self._close_trial(trial, step)

@jax.jit
def _add_sums(a: dict, b: dict) -> dict:
    return jax.tree_util.tree_map(jnp.add, a, b)


def train(config, workdir: str) -> dict:
    return Trainer(config, workdir).run()


def final_params(workdir: str):
    """Host copies of the parameters of the latest checkpoint (tests, analysis)."""
    from bsgap.restore import load_run

    return load_run(workdir, with_data=False).params

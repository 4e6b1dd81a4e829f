"""How the trainer builds and compiles its programs (a mixin of ``bsgap.trainer.Trainer``).

``_build``: the model, lr schedule, optimizer, device mesh, every trial's initial state stacked on
the trial axis, the eval program and the plan of which splits stay on the devices.
``_compile``: the eval step compiled ahead (its footprint joins the memory budget), then the train
step for the layout, or, with ``microbatch_size='auto'``, for the largest microbatch that fits
the budget (``bsgap.memory.choose_microbatch``; every process agrees on it).
It uses the trainer's config, resolved run, trials, data, device count and loop choices.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from bsgap import parallel
from bsgap.accumulation import resolve_accumulation_loop
from bsgap.device_resident import DEFAULT_DEVICE_RESIDENT_BYTES, ResidentEval, plan_resident
from bsgap.memory import (DEFAULT_HEADROOM_FRACTION, QUEUED_INPUT_BATCHES, MemoryBudget,
                          check_same_microbatch, choose_microbatch, compiled_bytes,
                          input_batch_bytes)
from bsgap.optim import make_optimizer
from bsgap.restore import model_from_config
from bsgap.run_records import say
from bsgap.scaling import schedule_factor_fn
from bsgap.step import init_key, make_eval_step, make_init_fn, make_train_step, with_model_inputs
from bsgap.trials import over_trials


class ProgramBuilder:
    def _init_trial_state(self, trial, sample):
        c, r = trial.config, trial.resolved
        hyper = dict(learning_rate=r.scaled_learning_rate, momentum=c.momentum,
                     weight_decay=c.weight_decay, warmup_steps=r.warmup_steps,
                     warmup_start_factor=r.warmup_start_factor)
        return self._init_fn(init_key(c.seed), sample, hyper, jnp.asarray(c.seed, jnp.int32))

    def _build(self):
        c, r = self.config, self.resolved
        self.model = model_from_config(c, {"layout": r.layout.to_json(),
                                           "num_classes": r.num_classes})
        self.schedule_factor = schedule_factor_fn(
            schedule=c.schedule, total_steps=r.total_steps, warmup_steps=r.warmup_steps,
            warmup_start_factor=r.warmup_start_factor, milestones=r.milestone_steps,
            gamma=c.schedule_gamma, poly_power=c.poly_power)
        self.tx = make_optimizer(
            name=c.optimizer, peak_lr=r.scaled_learning_rate, schedule_factor=self.schedule_factor,
            momentum=c.momentum, weight_decay=c.weight_decay, decay_all=c.decay_all_params)
        self.mesh = parallel.make_mesh(self.num_devices)
        sample = jnp.asarray(self.data.sample_images(r.layout.bn_group or 1))
        self._init_fn = make_init_fn(self.model, self.tx)
        states = [self._init_trial_state(t, sample) for t in self.trials]
        # Host copies first: leaves that share one buffer (e.g. equal zeros) cannot both be donated.
        stacked = jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                                         *states)
        self.state = parallel.replicate(self.mesh, stacked)
        local_eval = make_eval_step(model=self.model, num_classes=r.num_classes)
        # Batches arrive as the dataset sends them (uint8 images where image_transfer is uint8):
        # normalized first thing in the jitted step, once for all trials (bsgap/data/transfer.py).
        self.eval_fn = parallel.data_parallel(with_model_inputs(
            over_trials(local_eval, self.trials_loop, shared_batch=True), self._to_model_input),
            self.mesh)
        self.eval_step = None   # compiled ahead by _compile (its footprint joins the budget)
        # Which in-memory splits stay on the devices (bsgap/device_resident.py).
        self.resident = plan_resident(
            self.data, limit_bytes=c.get("device_resident_bytes", DEFAULT_DEVICE_RESIDENT_BYTES),
            eval_batch_size=c.eval_batch_size, num_devices=self.num_devices,
            process_count=jax.process_count())
        self._resident_eval = ResidentEval()

    @property
    def _to_model_input(self):
        return self.data.transfer.to_model_input if self.data.transfer.on_device else None

    def compile(self):
        """Build the model, optimizer and initial state and compile the train step (``step_fn``);
        ``run()`` does this itself. For benchmarks and tools that drive the step directly (the
        workdir's lock, taken at construction, is held until ``release()`` or garbage
        collection)."""
        self._build()
        self._compile()
        return self.step_fn

    def _batch_spec(self):
        return parallel.AXIS if self.shared_data else (None, parallel.AXIS)

    def _compile(self):
        c, r = self.config, self.resolved
        spec = self.data.wire_spec   # the batches as sent (uint8 images: normalized in the step)
        sharding = parallel.batch_sharded(self.mesh, self._batch_spec())
        lead = (c.batch_size,) if self.shared_data else (self.num_trials, c.batch_size)

        platform = jax.devices()[0].platform

        def compile_for(layout):
            self.accumulation_loop = resolve_accumulation_loop(
                self.accumulation_request, platform, layout.accumulation_steps,
                memory_bound=c.microbatch_size == "auto")
            local = make_train_step(model=self.model, tx=self.tx, layout=layout,
                                    num_classes=r.num_classes, label_smoothing=c.label_smoothing,
                                    noise_ema_decay=c.noise_ema_decay,
                                    schedule_factor=self.schedule_factor,
                                    accumulation_loop=self.accumulation_loop,
                                    conv_gradients=self.conv_gradients)
            trials_step = with_model_inputs(over_trials(local, self.trials_loop, self.shared_data),
                                            self._to_model_input)
            fn = parallel.data_parallel(trials_step, self.mesh, donate_state=True,
                                        batch_spec=self._batch_spec())
            batch = {k: jax.ShapeDtypeStruct(lead + tuple(shape), dtype, sharding=sharding)
                     for k, (shape, dtype) in spec.items()}
            return fn.lower(self.state, batch).compile()

        start = time.perf_counter()
        auto = c.microbatch_size == "auto"
        self.eval_step = self._compile_eval()
        budget = None
        if self.memory_limit is not None:
            trials_per_batch = 1 if self.shared_data else self.num_trials
            budget = MemoryBudget(
                limit_bytes=self.memory_limit,
                headroom_fraction=c.get("memory_headroom_fraction", DEFAULT_HEADROOM_FRACTION),
                eval_step_bytes=compiled_bytes(self.eval_step),
                queued_input_bytes=QUEUED_INPUT_BATCHES * input_batch_bytes(
                    spec, r.layout.per_device_batch * trials_per_batch),
                resident_bytes=self.resident["bytes_per_device"])
        layout, self.step_fn, self.step_bytes, tried = choose_microbatch(
            r.layout, compile_for, auto=auto, budget=budget, log=say)
        if auto:
            check_same_microbatch(layout.microbatch)   # every process, or none, goes on
        self.memory_record = {"budget": None if budget is None else budget.to_json(),
                              "tried": tried}
        for trial in self.trials:
            trial.resolved = dataclasses.replace(trial.resolved, layout=layout)
        self.resolved = self.trials[0].resolved
        self.compile_seconds = time.perf_counter() - start

    def _eval_batch_spec(self) -> dict:
        """Shapes of one global eval batch (the train example's keys and a float32 'mask')."""
        sharding = parallel.batch_sharded(self.mesh)
        spec = dict(self.data.wire_spec, mask=((), np.dtype(np.float32)))
        return {k: jax.ShapeDtypeStruct((self.config.eval_batch_size,) + tuple(shape), dtype,
                                        sharding=sharding) for k, (shape, dtype) in spec.items()}

    def _compile_eval(self):
        return self.eval_fn.lower(self.state, self._eval_batch_spec()).compile()

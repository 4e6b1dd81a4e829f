"""What the trainer writes to and reads back from its trials' run directories.

``RunRecords`` is a mixin of ``bsgap.trainer.Trainer`` (it uses the trainer's trials, state and
settings): config.json, summary.json (written at a trial's end, or rebuilt from the final
checkpoint when it went missing), resuming every trial from its newest checkpoint that restores,
and the clean stop on a signal (bsgap/interrupt.py).
"""
from __future__ import annotations

import os
import sys

from bsgap import logbook, parallel
from bsgap.agreement import decided_by_process_0
from bsgap.checkpoint import Checkpointer, abstract_like
from bsgap.host_state import HostState, run_summary
from bsgap.interrupt import Interrupted
from bsgap.workdir import WorkdirError, environment, plain_config


def say(message: str) -> None:
    if parallel.is_main_process():
        from tqdm import tqdm

        tqdm.write(f"[bsgap] {message}", file=sys.stderr)


class RunRecords:
    def _write_config(self, trial):
        if not self.main:
            return
        logbook.write_json_atomic(os.path.join(trial.workdir, logbook.CONFIG_FILE), {
            "config": plain_config(trial.config), "resolved": trial.resolved.to_json(),
            "environment": dict(environment(self.num_devices, self.num_trials),
                                trials_loop=self.trials_loop,
                                trials_loop_reason=self.trials_loop_reason,
                                jax_settings=self.jax_settings,
                                accumulation_loop=self.accumulation_loop,
                                conv_gradients=self.conv_gradients,
                                image_transfer=self.data.transfer.to_json(),
                                device_resident=self.resident),
            "compile_seconds": self.compile_seconds, "step_bytes_per_device": self.step_bytes,
            "memory": self.memory_record})

    # ----------------------------------------------------------------------------- resume
    def _restore(self) -> None:
        """Load every trial's latest checkpoint; finished trials are restored frozen."""
        abstract = abstract_like(self.trial_state(0))
        running_steps = set()
        for k, trial in enumerate(self.trials):
            trial.checkpointer = Checkpointer(trial.workdir,
                                              max_to_keep=trial.config.keep_checkpoints)
            # Process 0's answers (bsgap/agreement.py): the finished status, the checkpoints.
            status = (self.finished_summaries[k] or {}).get("status")
            steps = (decided_by_process_0(trial.checkpointer.all_steps)
                     if self.modes[k] == "resume" else None)
            newest = (trial.checkpointer.restore_newest(
                abstract, lambda m, w=trial.workdir: say(f"{w}: {m}"), set_aside=self.main,
                steps=steps) if self.modes[k] == "resume" else None)
            if newest is not None:
                latest, state, meta = newest
                self._set_trial_state(k, state)
                trial.host, trial.start_step = HostState(**meta), latest
            if status not in logbook.FINAL_STATUSES and trial.host.status in logbook.FINAL_STATUSES:
                # Finished (its last checkpoint says so) but summary.json is gone: rebuild it.
                trial.summary = self._write_summary(trial, trial.start_step)
                status = trial.summary["status"]
                say(f"{trial.workdir}: {logbook.SUMMARY_FILE} was missing; rebuilt from the final "
                    "checkpoint")
            if status in logbook.FINAL_STATUSES:
                trial.host.status = status
                if trial.host.steps_to_target is None and self.finished_summaries[k]:
                    # its checkpoint could not be restored: a race still needs its crossing
                    trial.host.steps_to_target = self.finished_summaries[k].get("steps_to_target")
                self._freeze(k)
            else:
                running_steps.add(trial.start_step)
        if len(running_steps) > 1:
            raise WorkdirError("the unfinished trials were checkpointed at different steps "
                               f"{sorted(running_steps)}; run them separately to resume")

    def _interrupted(self, signum: int, step: int) -> None:
        """Checkpoints of the running trials were just saved at ``step`` (the host state holds
        the partial log interval): wait for them, close the logs, and stop."""
        for trial in self.trials:
            if trial.book is not None and trial.running:
                trial.checkpointer.close()
                trial.book.close()
        raise Interrupted(signum, step)   # its message is the one line bsgap.train prints

    def _write_summary(self, trial, step: int) -> dict:
        summary = run_summary(trial.host, trial.config, trial.resolved, step,
                              compile_seconds=self.compile_seconds, trials=self.num_trials)
        if self.main:
            logbook.write_json_atomic(os.path.join(trial.workdir, logbook.SUMMARY_FILE), summary)
        return summary

    def _close_trial(self, trial, step: int) -> None:
        trial.checkpointer.close()
        summary = self._write_summary(trial, step)
        trial.book.close()
        trial.summary = summary
        say(f"{summary['status']}: best eval accuracy {summary['best_eval_accuracy']}, "
            f"{summary['examples_per_second'] or 0:,.0f} examples/s; run in {trial.workdir}")

    def _finish(self, step: int) -> list[dict]:
        out = []
        for k, trial in enumerate(self.trials):
            if trial.book is None:  # finished before this process started
                trial.checkpointer.close()
                # its summary as process 0 read it, or (rebuilt just now) wrote it
                out.append(self.finished_summaries[k] or trial.summary or decided_by_process_0(
                    lambda t=trial: logbook.read_json(os.path.join(t.workdir,
                                                                   logbook.SUMMARY_FILE))))
            else:
                out.append(trial.summary)
        return out

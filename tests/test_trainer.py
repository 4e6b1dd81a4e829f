"""End-to-end runs: resume after SIGKILL, refusal of a different config, divergence, stopping,
full-split evaluation, and the CLI's error messages."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from bsgap import logbook
from bsgap.trainer import Trainer, final_params
from bsgap.workdir import WorkdirError
from helpers import ROOT, drive_steps, load_config, tiny_config

TIMING = {"examples_per_second", "seconds_to_target", "train_seconds", "compile_seconds"}


def _cli(workdir, data_dir, *extra):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests"))
    return [sys.executable, "-m", "bsgap.train", "--config=configs/digits_mlp.py",
            f"--workdir={workdir}", f"--config.data_dir={data_dir}",
            "--config.progress_bar=False", "--config.num_devices=2", *extra], env


def _finished_checkpoints(workdir):
    path = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(path):
        return []
    return sorted(int(d) for d in os.listdir(path) if d.isdigit())


def test_resume_after_sigkill_matches_uninterrupted_run(data_dir, tmp_path):
    # Killed after its first checkpoint (step 100), ~700 steps (~4 s) before the end.
    extra = ("--config.num_epochs=None", "--config.num_steps=800",
             "--config.checkpoint_every_steps=100", "--config.eval_every_steps=250",
             "--config.log_every_steps=50", "--config.tensorboard=False")
    full, killed = tmp_path / "full", tmp_path / "killed"
    # The uninterrupted reference runs in this process (one interpreter start-up fewer): the same
    # config the CLI parses, on the same 2 devices, so the same compiled program.
    reference = load_config("configs/digits_mlp.py", data_dir=data_dir, progress_bar=False,
                            num_devices=2, num_epochs=None, num_steps=800,
                            checkpoint_every_steps=100, eval_every_steps=250, log_every_steps=50,
                            tensorboard=False)
    Trainer(reference, str(full)).run()

    cmd, env = _cli(killed, data_dir, *extra)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(_finished_checkpoints(killed)) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_at_kill = _finished_checkpoints(killed)
    assert steps_at_kill and steps_at_kill[-1] < 800, "the run must be killed mid-way"
    assert not (killed / logbook.SUMMARY_FILE).exists()

    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from the checkpoint" in result.stderr

    a = logbook.read_json(str(full / logbook.SUMMARY_FILE))
    b = logbook.read_json(str(killed / logbook.SUMMARY_FILE))
    assert a["status"] == b["status"] == "complete" and a["steps"] == 800
    assert {k: v for k, v in a.items() if k not in TIMING} == \
        {k: v for k, v in b.items() if k not in TIMING}
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa
    assert strip(logbook.read_jsonl(str(full / "eval.jsonl"))) == \
        strip(logbook.read_jsonl(str(killed / "eval.jsonl")))
    assert strip(logbook.read_jsonl(str(full / "metrics.jsonl"))) == \
        strip(logbook.read_jsonl(str(killed / "metrics.jsonl")))
    for x, y in zip(jax.tree_util.tree_leaves(final_params(str(full))),
                    jax.tree_util.tree_leaves(final_params(str(killed)))):
        np.testing.assert_array_equal(x, y)

    # A third run of the same command finds the run finished and changes nothing.
    before = (killed / logbook.SUMMARY_FILE).read_text()
    again = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and "already finished" in again.stderr
    assert (killed / logbook.SUMMARY_FILE).read_text() == before


def test_different_config_on_existing_workdir_is_refused(data_dir, tmp_path):
    Trainer(tiny_config(data_dir), str(tmp_path)).run()
    before = {p: (tmp_path / p).read_bytes() for p in ("config.json", "summary.json")}
    with pytest.raises(WorkdirError, match=r"batch_size: 32 in the run vs 64 now"):
        Trainer(tiny_config(data_dir, batch_size=64), str(tmp_path))
    assert before == {p: (tmp_path / p).read_bytes() for p in before}


def test_cli_bad_config_exits_2_with_one_paragraph(data_dir, tmp_path):
    # batch 32 on 2 devices: 16 per device, which 7 does not divide.
    cmd, env = _cli(tmp_path / "bad", data_dir, "--config.microbatch_size=7")
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "microbatch_size=7" in result.stderr and "valid microbatch sizes" in result.stderr
    assert "Traceback" not in result.stderr
    cmd, env = _cli(tmp_path / "bad2", data_dir, "--config.lr_scaling=cubic")
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "lr_scaling='cubic'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "bad2").exists()


def test_nonfinite_loss_is_a_result(data_dir, tmp_path):
    config = tiny_config(data_dir, learning_rate=1e6, optimizer="sgd")
    summary = Trainer(config, str(tmp_path / "run")).run()
    assert summary["status"] == "diverged"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"
    # The step it names is the first whose loss the raw step reports non-finite (the same
    # program driven directly, no host bookkeeping); from there on nothing changes.
    losses, params = [], []
    for _, _, after, _, metrics in drive_steps(Trainer(config, str(tmp_path / "driven")), 20):
        losses.append(float(metrics["train_loss"]))
        params.append(after)
    first = next(i for i, loss in enumerate(losses) if not np.isfinite(loss)) + 1
    assert summary["diverged_at_step"] == first == summary["steps"] and 2 <= first < 20
    assert all(np.isfinite(losses[:first - 1]))
    for later in params[first - 1:]:   # frozen at the last finite update
        for x, y in zip(jax.tree_util.tree_leaves(later),
                        jax.tree_util.tree_leaves(params[first - 2])):
            np.testing.assert_array_equal(x, y)


def test_target_and_patience_stop(data_dir, tmp_path):
    s = Trainer(tiny_config(data_dir, num_steps=400, eval_every_steps=20, target_accuracy=0.8,
                            stop_at_target=True), str(tmp_path / "t")).run()
    evals = logbook.read_jsonl(str(tmp_path / "t" / "eval.jsonl"))
    first = next(r for r in evals if r["accuracy"] >= 0.8)
    assert s["status"] == "target_reached" and s["steps_to_target"] == first["step"] == s["steps"]
    assert s["examples_to_target"] == first["step"] * 32 and s["seconds_to_target"] > 0
    assert all(r["accuracy"] < 0.8 for r in evals[:-1])

    s = Trainer(tiny_config(data_dir, num_steps=2000, eval_every_steps=5, patience_evals=3,
                            learning_rate=0.5), str(tmp_path / "p")).run()
    evals = logbook.read_jsonl(str(tmp_path / "p" / "eval.jsonl"))
    accs = [r["accuracy"] for r in evals]
    # Stopped at the 3rd evaluation after the best one (a tie is no improvement), long before
    # the 2,000-step budget; nothing was evaluated after it.
    best = accs.index(max(accs))
    assert s["status"] == "early_stopped"
    assert len(accs) == best + 4 and all(a <= accs[best] for a in accs[best + 1:])
    assert s["steps"] == evals[-1]["step"] == 5 * (best + 4) < 2000
    assert s["best_eval_step"] == evals[best]["step"]
    # Before the best, no stretch of 3 evaluations without a new best: it did not stop late.
    since, top = 0, -1.0
    for a in accs[:best + 1]:
        since, top = (0, a) if a > top else (since + 1, top)
        assert since < 3


@pytest.mark.parametrize("eval_batch", [64, 200, 1000])
def test_eval_counts_every_example_once(data_dir, tmp_path, eval_batch):
    trainer = Trainer(tiny_config(data_dir, num_steps=1, eval_batch_size=eval_batch,
                                  num_devices=8), str(tmp_path))
    trainer.run()
    result = trainer.evaluate(trainer.state)[0]
    assert result["num_examples"] == 360
    # Independent computation on the host, over the whole split at once: the sums the devices
    # accumulated over the padded batches (fetched once) against one float64 pass.
    data = trainer.data.eval.arrays
    logits = trainer.model.apply({"params": jax.device_get(trainer.trial_state(0).params)},
                                 data["image"], train=False)
    logits = np.asarray(logits, np.float64)
    expected = float(np.mean(np.argmax(logits, -1) == data["label"]))
    assert result["accuracy"] == pytest.approx(expected, abs=1e-6)
    log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    loss = float(np.mean(log_z - logits[np.arange(360), data["label"]]))
    assert result["loss"] == pytest.approx(loss, rel=1e-5)

"""Trials that stop inside a K-trial program: one at its target, one by patience, one to the end.
Each must end exactly as the same trial run alone (status, stopping step, evaluations, frozen
parameters), and a program resumed after two of its trials finished must finish the third as an
uninterrupted run does, leaving the finished two untouched. Also: keep_checkpoints."""
import os
import shutil

import jax
import numpy as np
import pytest

from bsgap import logbook
from bsgap.trainer import Trainer
from bsgap.trials import expand_trials
from helpers import tiny_config

TIMING = {"examples_per_second", "seconds_to_target", "train_seconds", "compile_seconds",
          "trials_in_program"}
TRIALS = ({"name": "target", "learning_rate": 0.3, "target_accuracy": 0.85, "stop_at_target": True},
          {"name": "patience", "learning_rate": 0.3, "patience_evals": 2},
          {"name": "full", "learning_rate": 0.05})


def _config(data_dir):
    config = tiny_config(data_dir, optimizer="sgd", num_steps=60, eval_every_steps=5,
                         checkpoint_every_steps=10, log_every_steps=5, num_devices=2,
                         keep_checkpoints=2)
    config.trials = TRIALS
    return config


def _strip(record):
    return {k: v for k, v in record.items() if k not in TIMING}


def _same(a, b):
    """Records (dicts, or lists of dicts) equal up to float32 rounding of their numbers."""
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
        return
    a, b = _strip(a), _strip(b)
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float) and b[key] is not None:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
        else:
            assert a[key] == b[key], key


def _checkpoints(workdir):
    return sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())


@pytest.fixture(scope="module")
def program(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("program")
    specs = expand_trials(_config(data_dir), str(root / "k"))
    trainer = Trainer.for_trials(specs)
    summaries = trainer.run_all()
    params = [jax.device_get(trainer.trial_state(k).params) for k in range(len(specs))]
    alone = []
    for k, (config, _) in enumerate(specs):
        single = Trainer(config, str(root / "alone" / str(k)))
        alone.append((single.run(), jax.device_get(single.trial_state(0).params),
                      str(root / "alone" / str(k))))
    return specs, summaries, params, alone


def test_stopped_trials_end_as_they_do_alone(program):
    specs, summaries, params, alone = program
    statuses = [s["status"] for s in summaries]
    assert statuses == ["target_reached", "early_stopped", "complete"]
    for k, (config, workdir) in enumerate(specs):
        alone_summary, alone_params, alone_dir = alone[k]
        _same(summaries[k], alone_summary)
        evals = logbook.read_jsonl(os.path.join(workdir, "eval.jsonl"))
        _same(evals, logbook.read_jsonl(os.path.join(alone_dir, "eval.jsonl")))
        steps = [r["step"] for r in evals]
        assert summaries[k]["steps"] == steps[-1]
        accs = [r["accuracy"] for r in evals]
        if k == 0:   # stops at the first evaluation at or above the target
            first = next(i for i, a in enumerate(accs) if a >= 0.85)
            assert len(evals) == first + 1 and summaries[k]["steps_to_target"] == steps[first]
        elif k == 1:  # stops at the 2nd evaluation without a new best (ties are no improvement)
            best = accs.index(max(accs))
            assert len(evals) == best + 3 and all(a <= accs[best] for a in accs[best + 1:])
        else:
            assert steps[-1] == 60
        assert summaries[k]["steps"] < 60 or k == 2
        # Frozen on the device at its stopping step: the parameters of the run alone.
        for x, y in zip(jax.tree_util.tree_leaves(params[k]), jax.tree_util.tree_leaves(alone_params)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        # keep_checkpoints=2: only the last two remain, the last at the stopping step.
        kept = _checkpoints(workdir)
        assert len(kept) == 2 and kept[-1] == summaries[k]["steps"], kept


def test_program_resumes_with_two_trials_finished(program, data_dir, tmp_path):
    specs, summaries, params, _ = program
    root = tmp_path / "k"
    shutil.copytree(os.path.dirname(specs[0][1]), root)
    # As a kill after step 50 leaves it: the unfinished trial has checkpoints up to 50 and no
    # summary; its logs ran further (they are truncated to the checkpoint on resume).
    full = root / "full"
    (full / "summary.json").unlink()
    shutil.rmtree(full / "checkpoints" / "60")
    finished = {name: (root / name / "summary.json").read_bytes() for name in ("target", "patience")}
    resumed = Trainer.for_trials(expand_trials(_config(data_dir), str(root)))
    got = resumed.run_all()
    assert [s["status"] for s in got] == ["target_reached", "early_stopped", "complete"]
    _same(got[2], summaries[2])
    for name, before in finished.items():
        assert (root / name / "summary.json").read_bytes() == before
    for name in ("metrics.jsonl", "eval.jsonl"):
        _same(logbook.read_jsonl(str(full / name)),
              logbook.read_jsonl(os.path.join(specs[2][1], name)))
    for x, y in zip(jax.tree_util.tree_leaves(jax.device_get(resumed.trial_state(2).params)),
                    jax.tree_util.tree_leaves(params[2])):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    for k in (0, 1):   # restored frozen, at their own stopping step
        for x, y in zip(jax.tree_util.tree_leaves(jax.device_get(resumed.trial_state(k).params)),
                        jax.tree_util.tree_leaves(params[k])):
            np.testing.assert_array_equal(x, y)


def test_race_stops_the_outpaced_at_the_winners_step(program, data_dir, tmp_path):
    """``race_to_target``: the trial alone-fastest to 0.85 ends exactly as alone; the slower one
    (lr 0.05, the 'full' trial's run alone gives its evaluations) stops at the winner's step with
    its own trajectory up to there, and the program ends there."""
    specs, _, _, alone = program
    base = _config(data_dir)
    base.trials = ({"name": "fast", "learning_rate": 0.3},
                   {"name": "slow", "learning_rate": 0.05})
    base.target_accuracy, base.stop_at_target = 0.85, True
    base.log_every_steps = 1   # a boundary every step: a resumed race gets the chance to stop early
    race = expand_trials(base, str(tmp_path / "race"))
    got = Trainer.for_trials(race, race_to_target=True).run_all()
    fast_alone, _, fast_dir = alone[0]          # lr 0.3, target 0.85, stop_at_target, alone
    slow_evals = logbook.read_jsonl(os.path.join(alone[2][2], "eval.jsonl"))   # lr 0.05 alone
    s = fast_alone["steps_to_target"]
    assert s is not None and got[0]["status"] == "target_reached"
    _same({k: v for k, v in got[0].items() if k != "stop_reason"},
          {k: v for k, v in fast_alone.items() if k != "stop_reason"})
    # the slow trial alone had not reached 0.85 by step s: the race may stop it there
    assert all(r["accuracy"] < 0.85 for r in slow_evals if r["step"] <= s)
    assert got[1]["status"] == "early_stopped" and got[1]["steps"] == s
    assert got[1]["steps_to_target"] is None
    assert got[1]["stop_reason"] == (f"outpaced: fast reached the target accuracy at step {s}; "
                                     f"this trial had not by step {s}")
    _same(logbook.read_jsonl(os.path.join(race[1][1], "eval.jsonl")),
          [r for r in slow_evals if r["step"] <= s])
    assert _checkpoints(race[1][1])[-1] == s
    # killed after the winner finished, before the loser's last checkpoint and summary: resumed,
    # the loser runs on from its earlier checkpoint to the winner's step and stops there as before
    again = tmp_path / "again"
    shutil.copytree(tmp_path / "race", again)
    slow = again / "slow"
    (slow / "summary.json").unlink()
    shutil.rmtree(slow / "checkpoints" / str(s))
    assert _checkpoints(str(slow)) and _checkpoints(str(slow))[-1] < s
    winner = (again / "fast" / "summary.json").read_bytes()
    resumed = Trainer.for_trials(expand_trials(base, str(again)), race_to_target=True).run_all()
    _same(resumed[1], got[1])
    assert resumed[1]["stop_reason"] == got[1]["stop_reason"]
    assert (again / "fast" / "summary.json").read_bytes() == winner


def test_race_is_refused_without_a_common_target(data_dir, tmp_path):
    from bsgap.run_config import ConfigError

    base = _config(data_dir)   # 'target' stops at 0.85, the others have no target
    with pytest.raises(ConfigError, match=r"race_to_target needs every trial .*0\.85"):
        Trainer.for_trials(expand_trials(base, str(tmp_path / "r")), race_to_target=True)
    assert not (tmp_path / "r").exists()

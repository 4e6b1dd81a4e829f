"""Branches that stop once their smoothed loss has crossed the base branch's (past the budget)
give the same branched estimates as the same branches trained to their full length: the curves
up to the crossing are the same computation, and nothing later enters the estimate."""
import json
import os

import pytest

from bsgap.advise import branches
from bsgap.trainer import Trainer
from helpers import tiny_config


@pytest.fixture(scope="module")
def pilot(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pilot")
    config = tiny_config(data_dir, num_devices=1, batch_size=16, num_steps=30,
                         checkpoint_every_steps=10, eval_every_steps=10, keep_checkpoints=10)
    Trainer(config, str(root / "pilot")).run()
    return config, str(root / "pilot")


def test_early_stopped_branches_give_the_full_branches_estimate(pilot, tmp_path):
    config, pilot_dir = pilot
    plan = branches.branch_plan(16, [16, 32, 64, 128], 8, 8, 4.0)
    runs = {}
    for early in (True, False):
        root = str(tmp_path / ("early" if early else "full"))
        runs[early] = (root, branches.run_branches(
            pilot_dir, config, {"batch_size": 16}, 10, plan, 0.05, 0.01, root, lambda _: None,
            lr_rule="sqrt", stop_early=early))
    (early_root, early), (full_root, full) = runs[True], runs[False]
    for key in ("b_crit", "fit", "target_loss", "steps_to_target_loss", "never_reached",
                "threshold", "loss_at_equal_examples"):
        assert early[key] == full[key], key
    # not degenerate: from the pilot's step 10 (eval loss 1.67) every branch takes steps to L*
    assert len(full["steps_to_target_loss"]) == 4
    assert all(v > 1 for v in full["steps_to_target_loss"].values())
    stopped = 0
    for b in plan["batch_sizes"]:
        mine = json.load(open(os.path.join(early_root, f"bs{b}", "summary.json")))
        theirs = json.load(open(os.path.join(full_root, f"bs{b}", "summary.json")))
        assert theirs["steps"] == plan["runs"][b]["num_steps"]
        if b == 16 or str(b) not in {str(k) for k in full["steps_to_target_loss"]}:
            assert mine["steps"] == theirs["steps"], b   # the base, and any that never crossed
            continue
        assert mine["steps"] * b >= plan["examples_budget"]
        if mine["steps"] < theirs["steps"]:
            stopped += 1
            assert mine["status"] == "early_stopped"
            assert mine["stop_reason"].startswith("reached the base branch's loss")
    assert stopped >= 1   # it saved something here


def test_a_branch_resumed_mid_run_stops_where_it_did(pilot, tmp_path, monkeypatch):
    """Killed just before its stopping evaluation, an early-stopping branch rebuilds its curve so
    far from eval.jsonl and stops at the same evaluation, with the same estimate, as
    uninterrupted (with only the evaluations after the resume, the smoothed curve would restart
    from the branch point's loss and miss the crossing)."""
    import shutil

    config, pilot_dir = pilot
    make = branches.branch_config

    def keeping_all(*args, **kwargs):   # a checkpoint at every evaluation, all kept
        c = make(*args, **kwargs)
        with c.unlocked():
            c.checkpoint_every_steps, c.keep_checkpoints = kwargs["eval_every_steps"], 1000
        return c

    monkeypatch.setattr(branches, "branch_config", keeping_all)
    plan = branches.branch_plan(16, [16, 32, 64, 128], 8, 8, 4.0)
    args = (pilot_dir, config, {"batch_size": 16}, 10, plan, 0.05, 0.01)
    first = branches.run_branches(*args, str(tmp_path / "a"), lambda _: None, lr_rule="sqrt")
    stopped = [b for b in plan["batch_sizes"] if json.load(open(
        tmp_path / "a" / f"bs{b}" / "summary.json"))["status"] == "early_stopped"]
    assert stopped
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for b in stopped:   # as a kill just before the branch's stopping evaluation leaves it
        run = tmp_path / "b" / f"bs{b}"
        (run / "summary.json").unlink()
        steps = sorted(int(d) for d in os.listdir(run / "checkpoints") if d.isdigit())
        assert len(steps) >= 2
        shutil.rmtree(run / "checkpoints" / str(steps[-1]))
    again = branches.run_branches(*args, str(tmp_path / "b"), lambda _: None, lr_rule="sqrt")
    for key in ("b_crit", "fit", "steps_to_target_loss", "threshold", "loss_at_equal_examples"):
        assert again[key] == first[key], key
    for b in stopped:
        a, r = (json.load(open(tmp_path / d / f"bs{b}" / "summary.json")) for d in "ab")
        assert (r["status"], r["steps"], r["stop_reason"]) == (a["status"], a["steps"],
                                                               a["stop_reason"]), b

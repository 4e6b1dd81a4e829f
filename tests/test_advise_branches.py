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
    plan = branches.branch_plan(16, [16, 32, 64, 128], 8, 4, 4.0)
    runs = {}
    for early in (True, False):
        root = str(tmp_path / ("early" if early else "full"))
        runs[early] = (root, branches.run_branches(
            pilot_dir, config, {"batch_size": 16}, 20, plan, 0.1, 0.01, root, lambda _: None,
            lr_rule="sqrt", stop_early=early))
    (early_root, early), (full_root, full) = runs[True], runs[False]
    for key in ("b_crit", "fit", "target_loss", "steps_to_target_loss", "never_reached",
                "threshold", "loss_at_equal_examples"):
        assert early[key] == full[key], key
    assert full["steps_to_target_loss"] and len(full["steps_to_target_loss"]) >= 3
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

"""A whole (tiny) `python -m bsgap.advise` run, SIGKILLed once the pilot's lr search finished and
run again: the finished measurements are reused (same files, untouched), the rest is measured, the
pilot is the search's trial with the fewest steps to the target, and advice.json's numbers follow
from the measurements by the closed form."""
import json
import math
import os
import signal
import subprocess
import sys
import time

from helpers import ROOT


def _cmd(workdir, data_dir, *extra):
    return [sys.executable, "-m", "bsgap.advise", "--config=configs/digits_mlp.py",
            f"--workdir={workdir}", f"--config.data_dir={data_dir}", "--config.num_devices=1",
            "--config.tensorboard=False", "--config.progress_bar=False",
            "--config.schedule=constant", "--config.num_epochs=20",
            "--config.eval_every_steps=10", "--config.log_every_steps=5",
            "--config.target_accuracy=0.9", "--batch_sizes=32,64", "--pilot_batch_size=32",
            "--throughput_examples=256", "--noise_examples=256", "--branch_fractions=0.5",
            "--branch_max_factor=2", "--branch_steps=4", *extra]


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))


def _log(workdir):
    path = os.path.join(workdir, "advise_log.jsonl")
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip().endswith("}")]


def test_bad_input_is_refused_before_anything_compiles(tmp_path, data_dir):
    for flag, needle in (("--batch_sizes=32,abc", "--batch_sizes='32,abc'"),
                         ("--target_accuracy=1.5", "--target_accuracy=1.5"),
                         ("--batch_sizes=32,24", "batch size 24"),
                         ("--pilot_lr_factors=1,0", "--pilot_lr_factors='1,0'"),
                         ("--pilot_lr_factors=1,1", "--pilot_lr_factors='1,1'")):
        out = subprocess.run(_cmd(tmp_path / "w", data_dir, flag, "--config.microbatch_size=16"),
                             cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert needle in out.stderr
        assert not (tmp_path / "w").exists()


def test_spent_budget_stops_before_the_next_measurement(tmp_path, data_dir):
    workdir = tmp_path / "w"
    out = subprocess.run(_cmd(workdir, data_dir, "--budget_seconds=0"), cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr
    assert "--budget_seconds=0 spent before throughput at B=32" in out.stderr
    assert (workdir / "advise_config.json").exists() and not (workdir / "throughput").exists()


def test_advise_resumes_after_sigkill_without_redoing_measurements(tmp_path, data_dir):
    workdir = str(tmp_path / "advise")
    proc = subprocess.Popen(_cmd(workdir, data_dir), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if any(r["measurement"].startswith("pilot") for r in _log(workdir)):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _log(workdir)
    search = "pilot lr search at B=32 (x0.5, x1, x2)"
    assert [r["measurement"] for r in first] == ["throughput at B=32", "throughput at B=64",
                                                 search], first
    assert not os.path.exists(os.path.join(workdir, "advice.json"))
    kept = [os.path.join(workdir, "throughput", f"bs{b}.json") for b in (32, 64)]
    trials = {f: os.path.join(workdir, "pilot_lr", f"lr_x{f:g}") for f in (0.5, 1.0, 2.0)}
    kept += [os.path.join(d, "summary.json") for d in trials.values()]
    before = {p: (os.stat(p).st_mtime_ns, open(p).read()) for p in kept}

    out = subprocess.run(_cmd(workdir, data_dir), cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "measuring throughput" not in out.stderr and f"measuring {search}" not in out.stderr
    for p in kept:
        assert (os.stat(p).st_mtime_ns, open(p).read()) == before[p], p
    second = _log(workdir)[len(first):]
    reused = {r["measurement"]: r["reused"] for r in second}
    assert reused["throughput at B=32"] and reused["throughput at B=64"]
    assert reused[search]
    assert any(m.startswith("exact noise") and not r for m, r in reused.items())
    assert any(m.startswith("branches") and not r for m, r in reused.items())

    advice = json.load(open(os.path.join(workdir, "advice.json")))
    # the pilot is the trial that reached the target in the fewest steps, read from the trials'
    # own files; every trial ran at the config's lr (0.1 at B=32, digits_mlp) x its factor; one
    # past the grid's edge was tried only while the fastest was on the edge
    search_json = json.load(open(os.path.join(workdir, "pilot_lr.json")))
    tried = [r["factor"] for r in search_json["trials"]]
    assert tried[:3] == [0.5, 1, 2] and len(tried) <= 5
    for k, extra in enumerate(tried[3:], 3):
        assert extra in (2 * max(tried[:k]), 0.5 * min(tried[:k])), tried
        trials[extra] = os.path.join(workdir, "pilot_lr", f"lr_x{extra:g}")
    steps = {}
    for f, d in trials.items():
        trial_summary = json.load(open(os.path.join(d, "summary.json")))
        trial_config = json.load(open(os.path.join(d, "config.json")))
        assert abs(trial_config["resolved"]["scaled_learning_rate"] - 0.1 * f) < 1e-9
        if trial_summary["steps_to_target"] is not None:
            steps[f] = trial_summary["steps_to_target"]
    chosen = min(steps, key=lambda f: (steps[f], abs(math.log(f))))
    # the first program raced (bsgap/race.py): its trials that did not reach the target stopped,
    # outpaced, at the first crossing among them
    crossing = min(steps[f] for f in (0.5, 1.0, 2.0) if f in steps)
    for f in (0.5, 1.0, 2.0):
        s = json.load(open(os.path.join(trials[f], "summary.json")))
        assert (s["steps"] == crossing and (s["steps_to_target"] == crossing or (
            s["status"] == "early_stopped" and s["stop_reason"].startswith("outpaced")))
            or s["status"] == "diverged" and s["steps"] <= crossing), s
    assert search_json["chosen_factor"] == chosen == advice["pilot_lr_search"]["chosen_factor"]
    pilot = json.load(open(os.path.join(trials[chosen], "summary.json")))
    assert advice["pilot"]["steps_to_target"] == pilot["steps_to_target"]
    assert abs(advice["pilot"]["learning_rate"] - 0.1 * chosen) < 1e-9
    # the advice's lr rule starts from the tuned lr (digits_mlp: no scaling rule)
    assert abs(advice["learning_rate"] - 0.1 * chosen) < 1e-9
    assert advice["b_crit"]["sweep"] is None and advice["target_accuracy"] == 0.9
    why = advice["b_crit_unavailable"]   # a reason for every missing estimate, and only those
    assert set(why) == {n for n, v in advice["b_crit"].items() if v is None or v <= 0}
    assert why["sweep"] == "no --sweep root given"
    # the cost counts each measurement once, where it was made (the throughput and the lr search
    # by the killed first invocation, the rest by the second), in wall and CPU seconds
    cost = advice["cost"]["by_kind"]
    assert set(cost) == {"throughput", "pilot", "exact_noise", "branches"}
    made = [r for r in first + second if not r["reused"]]
    assert cost["throughput"]["count"] == 2   # not again by the second invocation
    assert cost["pilot"]["count"] == len([r for r in made if r["measurement"].startswith("pilot")])
    assert sum(k["count"] for k in cost.values()) == len(made)
    assert all(k["cpu_seconds"] > 0 and k["wall_seconds"] > 0 for k in cost.values())
    assert "the measurements made in this workdir cost" in out.stdout
    assert "B_crit from sweep: not available (no --sweep root given)" in out.stdout
    assert advice["recommended_batch_size"] in (32, 64)
    speed = {b: json.load(open(p))["result"]["examples_per_second"]
             for b, p in zip((32, 64), kept)}
    for name, p in advice["predictions"].items():
        b_crit, s_p = p["b_crit"], pilot["steps_to_target"]
        s_min = s_p / (1 + b_crit / 32)
        for r in p["predicted"]:
            b = r["batch_size"]
            assert abs(r["steps_to_target"] - s_min * (1 + b_crit / b)) < 1e-6 * s_p
            assert abs(r["seconds_to_target"] / (r["steps_to_target"] * b / speed[b]) - 1) < 1e-9
    assert os.path.getsize(os.path.join(workdir, "advice.png")) > 10_000
    assert out.stdout.strip().splitlines()[-1] == os.path.join(workdir, "advice.json")

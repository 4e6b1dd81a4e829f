"""A whole (tiny) `python -m bsgap.advise` run, SIGKILLed once the pilot finished and run again:
the finished measurements are reused (same files, untouched), the rest is measured, and
advice.json's numbers follow from the measurements by the closed form."""
import json
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
                         ("--batch_sizes=32,24", "batch size 24")):
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
    assert [r["measurement"] for r in first] == ["throughput at B=32", "throughput at B=64",
                                                 "pilot run at B=32"], first
    assert not os.path.exists(os.path.join(workdir, "advice.json"))
    kept = [os.path.join(workdir, "throughput", f"bs{b}.json") for b in (32, 64)]
    kept.append(os.path.join(workdir, "pilot", "summary.json"))
    before = {p: (os.stat(p).st_mtime_ns, open(p).read()) for p in kept}

    out = subprocess.run(_cmd(workdir, data_dir), cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "measuring throughput" not in out.stderr and "measuring pilot" not in out.stderr
    for p in kept:
        assert (os.stat(p).st_mtime_ns, open(p).read()) == before[p], p
    second = _log(workdir)[len(first):]
    reused = {r["measurement"]: r["reused"] for r in second}
    assert reused["throughput at B=32"] and reused["throughput at B=64"]
    assert reused["pilot run at B=32"]
    assert any(m.startswith("exact noise") and not r for m, r in reused.items())
    assert any(m.startswith("branches") and not r for m, r in reused.items())

    advice = json.load(open(os.path.join(workdir, "advice.json")))
    pilot = json.load(open(os.path.join(workdir, "pilot", "summary.json")))
    assert advice["pilot"]["steps_to_target"] == pilot["steps_to_target"]
    assert advice["b_crit"]["sweep"] is None and advice["target_accuracy"] == 0.9
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

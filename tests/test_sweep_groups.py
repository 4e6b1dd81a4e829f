"""Sweep trials grouped into vmapped programs (launch.sweep --group_trials, launch/grouping.py):
which trials share a program, the cap from --max_trials_per_program and from the memory estimate,
the group command parsed back by the CLI's own parser, outcomes of a failing program, and a real
grouped sweep on the embedded digits equal to the same trials run one by one, then resumed."""
import ast
import json
import os
import shutil
import sys
import textwrap

import pytest

from bsgap import logbook
from bsgap.memory import max_trials_in_memory
from bsgap.trainer import Trainer
from bsgap.trial_fields import TRIAL_FIELDS
from bsgap.trials import expand_trials
from bsgap.workdir import plain_config
from launch import footprint, grouping, runner, spec
from launch import sweep as sweep_cli
from launch.state import TrialState

SYNTHETIC = """
from launch.spec import log_grid
def get_sweep():
    return {"config": "configs/digits_mlp.py",
            "overrides": {"num_epochs": None, "num_steps": 40, "target_accuracy": 0.9,
                          "momentum": 0.8},
            "axes": [{"batch_size": [16, 64]},
                     {"label_smoothing": [0.0, 0.1]},
                     {"learning_rate": lambda t: log_grid(0.1 * t["batch_size"] / 32, num=3,
                                                          factor=3.0)},
                     {"seed": [0, 1]}]}
"""


def _sweep(tmp_path, body=SYNTHETIC, name="s.py", extra=None):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    sweep = spec.load_sweep(str(path), extra)
    return sweep, spec.expand(sweep)


def _entries(sweep, trials, states=None):
    states = states or {}
    return [(t, states.get(t.name, TrialState("new")), spec.expected_config(sweep, t))
            for t in trials]


def _names(jobs):
    return [[t.name for t in job.trials] for job in jobs]


def test_trials_share_a_program_only_outside_trial_fields(tmp_path):
    sweep, trials = _sweep(tmp_path)
    assert len(trials) == 2 * 2 * 3 * 2
    jobs = grouping.plan_jobs(sweep, _entries(sweep, trials), "/r")
    # One program per (batch size, label smoothing): label_smoothing is not a TRIAL_FIELD.
    assert "label_smoothing" not in TRIAL_FIELDS and "learning_rate" in TRIAL_FIELDS
    assert [len(j.trials) for j in jobs] == [6, 6, 6, 6]
    for job in jobs:
        keys = {(t.axes["batch_size"], t.axes["label_smoothing"]) for t in job.trials}
        assert len(keys) == 1
    assert _names(jobs)[1][:2] == ["bs16-ls0.1-lr0.0166667-s0", "bs16-ls0.1-lr0.0166667-s1"]

    # The cap splits a group into consecutive chunks of near-equal size.
    capped = grouping.plan_jobs(sweep, _entries(sweep, trials), "/r", max_trials_per_program=4)
    assert [len(j.trials) for j in capped] == [3, 3] * 4
    assert _names(capped)[:2] == [_names(jobs)[0][:3], _names(jobs)[0][3:]]
    assert grouping.split_by_cap(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert grouping.split_by_cap(list(range(6)), 6) == [list(range(6))]

    # One trial alone: its ordinary command, exactly as without --group_trials.
    single = grouping.plan_jobs(sweep, _entries(sweep, trials), "/r", max_trials_per_program=1)
    assert len(single) == 24 and not any(j.grouped for j in single)
    assert [list(j.argv) for j in single] == [spec.trial_command(sweep, t, "/r") for t in trials]

    # Interrupted trials resume together only from the same checkpoint step (new ones: step 0).
    group = [t.name for t in trials if t.axes["batch_size"] == 64
             and t.axes["label_smoothing"] == 0.0]
    states = {group[0]: TrialState("interrupted", checkpoint_step=20),
              group[1]: TrialState("interrupted", checkpoint_step=20),
              group[2]: TrialState("interrupted", checkpoint_step=None),
              group[3]: TrialState("interrupted", checkpoint_step=10)}
    jobs = grouping.plan_jobs(sweep, _entries(sweep, trials, states), "/r")
    assert [n for n in _names(jobs) if set(n) & set(group)] == [
        group[:2], [group[2], group[4], group[5]], [group[3]]]


def test_memory_cap_from_the_single_trial_footprint(tmp_path):
    assert max_trials_in_memory(1000, 283) == 3          # floor(0.85 * 1000 / 283)
    assert max_trials_in_memory(1000, 284) == 2
    assert max_trials_in_memory(1000, 851) == 0
    assert grouping.trials_cap(16, 10_000, 100) == 16
    assert grouping.trials_cap(16, 1000, 2000) == 1
    assert grouping.trials_cap(5, None, 100) == 5
    sweep, trials = _sweep(tmp_path)
    asked = []

    def probe(trial, expected):
        asked.append(trial.name)
        return 1000, (280 if expected["batch_size"] == 16 else 1000)

    jobs = grouping.plan_jobs(sweep, _entries(sweep, trials), "/r", footprint=probe,
                              out=lambda line: None)
    assert len(asked) == 4, "one measurement per group of trials that could share a program"
    by_bs = {16: [], 64: []}
    for job in jobs:
        by_bs[job.trials[0].axes["batch_size"]].append(len(job.trials))
    assert by_bs == {16: [3, 3, 3, 3], 64: [1] * 12}
    # Programs of one config at different checkpoint steps are measured once.
    states = {t.name: TrialState("interrupted", checkpoint_step=10) for t in trials[:3]}
    asked.clear()
    jobs = grouping.plan_jobs(sweep, _entries(sweep, trials, states), "/r", footprint=probe,
                              out=lambda line: None)
    assert len(asked) == 4 and [len(j.trials) for j in jobs[:2]] == [3, 3]
    # The runner's probe: no limit known on a CPU (nothing is compiled), nor measured for a
    # multi-host sweep.
    expected = spec.expected_config(sweep, trials[0])
    probe = footprint.MemoryProbe(sweep, env={"JAX_PLATFORMS": "cpu"}, out=pytest.fail)
    assert probe(trials[0], expected) == (None, None)
    probe = footprint.MemoryProbe(sweep, env={}, multihost=True, out=pytest.fail)
    assert probe(trials[0], {**expected, "memory_limit_bytes": 10**9}) == (None, None)
    # Without a known limit only --max_trials_per_program caps.
    jobs = grouping.plan_jobs(sweep, _entries(sweep, trials), "/r",
                              footprint=lambda t, e: (None, None))
    assert [len(j.trials) for j in jobs] == [6] * 4


def test_group_command_parses_back_to_each_trial_config(tmp_path):
    sweep, trials = _sweep(tmp_path, extra={"data_dir": "/data/tf ds",
                                            "model_kwargs.hidden_sizes": (32, 16)})
    root = str(tmp_path / "root")
    jobs = grouping.plan_jobs(sweep, _entries(sweep, trials), root)
    assert all(j.grouped for j in jobs)
    for job in jobs:
        argv = list(job.argv)
        assert argv[:5] == [sys.executable, "-m", "bsgap.train",
                            "--config=configs/digits_mlp.py", f"--workdir={root}"]
        # Fixed trial fields go on the command line once; each trial's dict holds its name and
        # what differs.
        assert "--config.target_accuracy=0.9" in argv and "--config.momentum=0.8" in argv
        dicts = ast.literal_eval(argv[-1].split("=", 1)[1])
        assert [set(d) for d in dicts] == [{"name", "learning_rate", "seed"}] * len(dicts)
        # The CLI's own parsing (ml_collections flags + bsgap.trials.expand_trials) gives every
        # trial exactly the config its own command gives, in the directory the sweep expects.
        flags = [f"--config={spec.config_path(sweep.config)}" if a.startswith("--config=") else a
                 for a in argv]
        specs = expand_trials(spec.parse_cli_config(flags), root)
        assert [w for _, w in specs] == [os.path.join(root, t.name) for t in job.trials]
        assert [plain_config(c) for c, _ in specs] == \
            [spec.expected_config(sweep, t) for t in job.trials]


def test_a_failing_program_marks_its_unfinished_trials_failed(tmp_path):
    """The first program writes a final summary for one trial and then crashes; the sweep goes on
    to the next program, which succeeds."""
    body = SYNTHETIC.replace("[16, 64]", "[16]").replace("[0.0, 0.1]", "[0.0]")
    sweep, trials = _sweep(tmp_path, body=body)
    root = tmp_path / "root"
    names = [t.name for t in trials]
    script = ("import json, os, sys\n"
              "for name in sys.argv[2:]:\n"
              "    os.makedirs(os.path.join(sys.argv[1], name))\n"
              "    if name == sys.argv[2]:\n"
              "        json.dump({'status': 'complete', 'best_eval_accuracy': 0.5},\n"
              "                  open(os.path.join(sys.argv[1], name, 'summary.json'), 'w'))\n"
              "sys.exit(int(len(sys.argv) > 4))\n")
    lines = []
    local = runner.LocalRunner(sweep, trials, str(root), group_trials=True,
                               max_trials_per_program=4, out=lines.append, poll_seconds=0.01)
    planned = local.jobs(_entries(sweep, trials))
    assert [len(j.trials) for j in planned] == [3, 3]
    fake = [grouping.Job(j.trials, j.states, (sys.executable, "-c", script, str(root),
                                              *[t.name for t in j.trials][:3 - 2 * k]))
            for k, j in enumerate(planned)]
    local.jobs = lambda entries: list(fake)
    counts = local.run()
    assert (counts["ran"], counts["failed"]) == (6, 4)
    records = {n: json.loads((root / "logs" / f"{n}.json").read_text()) for n in names}
    assert records[names[0]]["outcome"] == "complete", "its summary is final: a result"
    assert [records[n]["outcome"] for n in names[1:3]] == ["failed", "failed"]
    assert records[names[1]]["returncode"] == 1 and records[names[1]]["group"] == names[:3]
    assert records[names[3]]["outcome"] == "complete"      # the next program still ran
    assert [records[n]["outcome"] for n in names[4:]] == ["failed", "failed"]  # exit 0, no summary
    assert f"[1] {names[1]}: failed (exit 1) in" in "\n".join(lines)
    group_log = root / "logs" / "groups" / f"{names[0]}.log"
    assert f"== {spec.command_string(list(fake[0].argv))}\n" in group_log.read_text()
    assert f"output in {group_log}" in (root / "logs" / f"{names[1]}.log").read_text()


def test_footprint_of_one_trial_bounds_the_k_trial_program(data_dir, tmp_path, capsys):
    """launch.footprint (the child the runner asks) measures the K = 1 step; the K-trial program
    compiled by the trainer fits in K times that, the linear estimate the cap relies on."""
    flags = [f"--config={spec.config_path('configs/digits_mlp.py')}",
             f"--config.data_dir={data_dir}", "--config.num_devices=1",
             "--config.memory_limit_bytes=100000000", "--config.batch_size=64"]
    assert footprint.main(["launch.footprint", *flags]) == 0
    measured = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert measured["limit_bytes"] == 100_000_000 and measured["microbatch"] == 64
    config = spec.parse_cli_config(flags)
    config.trials = tuple({"learning_rate": 0.1 * (k + 1), "seed": k} for k in range(2))
    for loop in ("vmap", "map"):
        trainer = Trainer.for_trials(expand_trials(config, str(tmp_path / loop)), trials_loop=loop)
        trainer._build()
        trainer._compile()
        bound = 2 * measured["bytes_per_trial"] / 0.85
        assert measured["bytes_per_trial"] < trainer.step_bytes <= bound, loop


SWEEP = """
def get_sweep():
    return {{"config": "configs/digits_mlp.py",
            "overrides": {{"data_dir": {data_dir!r}, "num_epochs": None, "num_steps": 40,
                          "checkpoint_every_steps": 20, "eval_every_steps": 20,
                          "log_every_steps": 10, "num_devices": 1, "tensorboard": False,
                          "progress_bar": False}},
            "axes": [{{"batch_size": [16, 64]}}, {{"learning_rate": [0.05, 0.2]}}]}}
"""
TIMING = {"examples_per_second", "seconds_to_target", "train_seconds", "compile_seconds",
          "trials_in_program"}


def _close(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a.keys() - TIMING:
        if isinstance(a[key], float) and b[key] is not None:
            assert a[key] == pytest.approx(b[key], rel=2e-4, abs=1e-6), key
        else:
            assert a[key] == b[key], key


def _records(workdir, name):
    return logbook.read_jsonl(os.path.join(workdir, name))


def test_grouped_sweep_equals_trials_run_alone_and_resumes(data_dir, tmp_path, capsys):
    path = tmp_path / "sweep.py"
    path.write_text(textwrap.dedent(SWEEP.format(data_dir=data_dir)))
    root = tmp_path / "root"
    args = [f"--sweep={path}", f"--root={root}", "--group_trials"]
    assert sweep_cli.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("one program of 2 trials on slot 0") == 2
    assert "4 trial(s), 0 skipped (finished before), 4 run, 0 failed" in out
    sweep, trials = _sweep(tmp_path, body=SWEEP.format(data_dir=data_dir), name="again.py")
    first = {}
    for trial in trials:
        workdir = root / trial.name
        stored = logbook.read_json(str(workdir / "config.json"))
        assert stored["config"] == spec.expected_config(sweep, trial)
        assert stored["environment"]["trials_in_program"] == 2
        record = json.loads((root / "logs" / f"{trial.name}.json").read_text())
        assert record["outcome"] == "complete" and len(record["group"]) == 2
        first[trial.name] = logbook.read_json(str(workdir / "summary.json"))
        # The same trial run alone (its own command's config, in this process).
        alone_dir = tmp_path / "alone" / trial.name
        config = spec.parse_cli_config(spec.trial_command(sweep, trial, "/unused",
                                                          config=spec.config_path(sweep.config)))
        alone = Trainer(config, str(alone_dir)).run()
        assert first[trial.name]["status"] == alone["status"] == "complete"
        _close(first[trial.name], alone)
        for name in ("metrics.jsonl", "eval.jsonl"):
            grouped, single = _records(workdir, name), _records(alone_dir, name)
            assert len(grouped) == len(single) > 0
            for a, b in zip(grouped, single):
                _close(a, b)

    # Interrupt the bs64 program after its checkpoint at step 20: the rerun skips the bs16 trials
    # and resumes both bs64 trials as one program, to the same results.
    for name in ("bs64-lr0.05", "bs64-lr0.2"):
        os.remove(root / name / "summary.json")
        shutil.rmtree(root / name / "checkpoints" / "40")
    assert sweep_cli.main(args) == 0
    out = capsys.readouterr().out
    assert "[0] bs16-lr0.05: skipped, finished (complete)" in out
    assert out.count("one program of 2 trials on slot 0") == 1
    assert "[3] bs64-lr0.2: resuming (interrupted (checkpoint 20)) in that program" in out
    assert "resuming from the checkpoint at step 20" in \
        (root / "logs" / "groups" / "bs64-lr0.05.log").read_text()
    for name in ("bs64-lr0.05", "bs64-lr0.2"):
        _close(logbook.read_json(str(root / name / "summary.json")), first[name])
        assert [r["step"] for r in _records(root / name, "metrics.jsonl")] == [10, 20, 30, 40]

"""Damaged run files and bad values (issue 13): a torn final JSONL line is dropped on resume and
the run ends as an undamaged one; other damage is an error naming the file and line; one bad run
never breaks analysis.collect's table; non-finite numbers and an empty trials tuple are refused;
a diverged run's summary counts the steps up to its divergence."""
import os
import shutil
import subprocess
import sys

import pytest

from analysis import collect
from bsgap import logbook
from bsgap.logbook import CorruptFileError
from bsgap.run_config import ConfigError, validate
from bsgap.trainer import Trainer
from helpers import ROOT, tiny_config

TIMING = {"examples_per_second", "seconds_to_target", "train_seconds", "compile_seconds"}


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def finished(data_dir, tmp_path_factory):
    """A finished 40-step run with checkpoints at 20 and 40."""
    path = tmp_path_factory.mktemp("finished") / "run"
    Trainer(tiny_config(data_dir, num_steps=40, checkpoint_every_steps=20, eval_every_steps=10,
                        log_every_steps=5), str(path)).run()
    return path


def test_torn_final_line_is_dropped_on_resume(data_dir, finished, tmp_path, capfd):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    # What a kill after step 40's checkpoint started but before the summary leaves: no summary,
    # the last checkpoint gone, a metrics line cut in the middle of a write.
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "40")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 0.98, "examples": 1440, "grad_no')
    summary = Trainer(tiny_config(data_dir, num_steps=40, checkpoint_every_steps=20,
                                  eval_every_steps=10, log_every_steps=5), str(run)).run()
    assert "metrics.jsonl: line 9 is cut short" in capfd.readouterr().err
    for name in ("metrics.jsonl", "eval.jsonl"):
        assert _strip(logbook.read_jsonl(str(run / name))) == \
            _strip(logbook.read_jsonl(str(finished / name)))
    assert {k: v for k, v in summary.items() if k not in TIMING} == {
        k: v for k, v in logbook.read_json(str(finished / "summary.json")).items()
        if k not in TIMING}


def test_damage_inside_a_file_names_the_file_and_line(finished, tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = (finished / "metrics.jsonl").read_text().splitlines()
    lines[2] = lines[2][:30]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorruptFileError, match=rf"{path}, line 3: not valid JSON"):
        logbook.read_jsonl(str(path))
    bad = tmp_path / "config.json"
    bad.write_text('{"config": {"batch_size": 3')
    with pytest.raises(CorruptFileError, match=rf"{bad} is not valid JSON"):
        logbook.read_json(str(bad))


def test_cli_names_a_damaged_config_json(data_dir, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "config.json").write_text('{"config": ')
    result = subprocess.run(
        [sys.executable, "-m", "bsgap.train", "--config=configs/digits_mlp.py",
         f"--workdir={run}", f"--config.data_dir={data_dir}"], cwd=ROOT, capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"{run}/config.json is not valid JSON" in result.stderr


def test_collect_skips_and_lists_an_unreadable_run(finished, tmp_path, capsys):
    root = tmp_path / "root"
    for name in ("good", "bad"):
        shutil.copytree(finished, root / name)
    lines = (root / "bad" / "eval.jsonl").read_text().splitlines()
    lines[1] = "{not json"
    (root / "bad" / "eval.jsonl").write_text("\n".join(lines) + "\n")
    table = collect.collect(str(root))
    assert list(table["run"]) == ["good"]
    err = capsys.readouterr().err
    assert "skipped 1 unreadable run(s): bad (" in err and "eval.jsonl, line 2" in err


@pytest.mark.parametrize("field,value", [("learning_rate", float("nan")),
                                         ("learning_rate", float("inf")),
                                         ("weight_decay", float("nan")),
                                         ("target_accuracy", float("nan"))])
def test_non_finite_numbers_are_refused(data_dir, field, value):
    with pytest.raises(ConfigError, match=rf"{field}={value!r} must be a finite number"):
        validate(tiny_config(data_dir, **{field: value}))


def test_cli_refuses_nan_and_an_empty_trials_tuple(data_dir, tmp_path):
    for extra, message in (("--config.learning_rate=nan", "learning_rate=nan must be a finite"),
                           ("--config.trials=()", "trials=() must be a non-empty tuple")):
        result = subprocess.run(
            [sys.executable, "-m", "bsgap.train", "--config=configs/digits_mlp.py",
             f"--workdir={tmp_path / 'w'}", f"--config.data_dir={data_dir}", extra], cwd=ROOT,
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr[-2000:]
        assert message in result.stderr and "Traceback" not in result.stderr
        assert not os.path.exists(tmp_path / "w")


def test_diverged_summary_counts_steps_up_to_the_divergence(data_dir, tmp_path):
    summary = Trainer(tiny_config(data_dir, learning_rate=1e6, optimizer="sgd", num_steps=20,
                                  log_every_steps=20), str(tmp_path)).run()
    assert summary["status"] == "diverged"
    assert summary["steps"] == summary["diverged_at_step"] < 20
    assert summary["examples"] == summary["steps"] * 32


@pytest.mark.parametrize("extra,message", [
    ("--config.batchsize=512", 'Did you mean "batch_size" instead of "batchsize"?'),
    ("--config=configs/nope.py", "configs/nope.py"),
    ("--config.batch_size=abc", "flag --config.batch_size=abc: invalid literal for int()"),
    ("--config.batch_size=1e9", "flag --config.batch_size=1e9"),
    ("--no_such_flag=3", "Unknown command line flag 'no_such_flag'"),
])
def test_bad_command_lines_exit_2_with_one_line(data_dir, tmp_path, extra, message):
    args = ["--config=configs/digits_mlp.py", f"--workdir={tmp_path / 'w'}",
            f"--config.data_dir={data_dir}"]
    result = subprocess.run([sys.executable, "-m", "bsgap.train", *args, extra], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "FATAL" not in result.stderr and not os.path.exists(tmp_path / "w")


def test_a_workdir_that_is_a_file_is_refused(data_dir, tmp_path):
    path = tmp_path / "a_file"
    path.write_text("mine")
    result = subprocess.run([sys.executable, "-m", "bsgap.train", "--config=configs/digits_mlp.py",
                             f"--workdir={path}", f"--config.data_dir={data_dir}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "is a file, not a directory" in result.stderr
    assert path.read_text() == "mine"


@pytest.mark.parametrize("body,message", [
    ("def get_sweep(:\n", "could not be loaded: SyntaxError"),
    ("def get_sweep():\n    raise RuntimeError('boom')\n", "get_sweep() raised RuntimeError: boom"),
])
def test_broken_sweep_files_exit_2_with_one_line(tmp_path, body, message):
    sweep = tmp_path / "sweep.py"
    sweep.write_text(body)
    result = subprocess.run([sys.executable, "-m", "launch.sweep", f"--sweep={sweep}",
                             f"--root={tmp_path / 'root'}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def _largest_file(directory):
    files = [os.path.join(d, f) for d, _, names in os.walk(directory) for f in names]
    return max(files, key=os.path.getsize)


@pytest.mark.parametrize("damage", ["data cut in half", "meta cut"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(data_dir, finished, tmp_path,
                                                                    capfd, damage):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "summary.json").unlink()   # killed after the last save, before the summary
    if damage == "data cut in half":
        path = _largest_file(run / "checkpoints" / "40" / "state")
    else:
        path = run / "checkpoints" / "40" / "meta" / "metadata"
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    summary = Trainer(tiny_config(data_dir, num_steps=40, checkpoint_every_steps=20,
                                  eval_every_steps=10, log_every_steps=5), str(run)).run()
    err = capfd.readouterr().err
    assert "the checkpoint at step 40 does not restore" in err, err[-3000:]
    assert "resuming from the checkpoint at step 20" in err
    assert (run / "checkpoints" / "40.damaged").is_dir()   # kept, never deleted
    assert {k: v for k, v in summary.items() if k not in TIMING} == {
        k: v for k, v in logbook.read_json(str(finished / "summary.json")).items()
        if k not in TIMING}
    for name in ("metrics.jsonl", "eval.jsonl"):
        assert _strip(logbook.read_jsonl(str(run / name))) == \
            _strip(logbook.read_jsonl(str(finished / name)))


def test_a_missing_summary_of_a_finished_run_is_rebuilt(data_dir, finished, tmp_path, capfd):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "summary.json").unlink()
    metrics_before = (run / "metrics.jsonl").read_bytes()
    summary = Trainer(tiny_config(data_dir, num_steps=40, checkpoint_every_steps=20,
                                  eval_every_steps=10, log_every_steps=5), str(run)).run()
    assert "summary.json was missing; rebuilt from the final checkpoint" in capfd.readouterr().err
    original = logbook.read_json(str(finished / "summary.json"))
    assert {k: v for k, v in summary.items() if k != "compile_seconds"} == \
        {k: v for k, v in original.items() if k != "compile_seconds"}
    assert logbook.read_json(str(run / "summary.json")) == summary
    assert (run / "metrics.jsonl").read_bytes() == metrics_before   # nothing was rerun


def test_disk_full_at_a_save_is_one_paragraph_and_keeps_earlier_checkpoints(data_dir, tmp_path,
                                                                           monkeypatch):
    from bsgap.checkpoint import CheckpointError, Checkpointer

    save = Checkpointer.save

    def fill_the_disk(self, step, state, meta):
        if step >= 20:
            self.manager.save = lambda *a, **k: (_ for _ in ()).throw(
                OSError(28, "No space left on device"))
        return save(self, step, state, meta)

    monkeypatch.setattr(Checkpointer, "save", fill_the_disk)
    with pytest.raises(CheckpointError, match=r"saving the checkpoint at step 20 in .*checkpoints "
                                              r"failed \(OSError: \[Errno 28\] No space left on "
                                              r"device; [\d,.]+ MiB free there now\)"):
        Trainer(tiny_config(data_dir, num_steps=40, checkpoint_every_steps=10), str(tmp_path)).run()
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]   # the earlier one intact
    monkeypatch.undo()
    summary = Trainer(tiny_config(data_dir, num_steps=40, checkpoint_every_steps=10),
                      str(tmp_path)).run()   # space again: resumes from step 10
    assert summary["status"] == "complete" and summary["steps"] == 40

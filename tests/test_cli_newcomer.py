"""What a new user types (issue 14, parts 1-4): a budget or milestone field on the command line
replaces the config file's; the BN group says whether the layout sets it and warns when the layout
shrank it; ``--config`` is found from any directory, by path or by name; ``--dry_run`` prints the
resolved run and writes nothing."""
import os
import subprocess
import sys

import pytest

from bsgap.config_files import ConfigFileError, available_configs, resolve_config_file
from bsgap.layout import bn_group_warning, resolve_layout
from bsgap.run_config import ConfigError, give_command_line_precedence, resolve, validate
from helpers import ROOT, load_config
from launch.spec import parse_cli_config


def _train(args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT)   # the checkout under test, from any directory
    return subprocess.run([sys.executable, "-m", "bsgap.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_command_line_budget_replaces_the_files():
    config = load_config()                       # the default sets num_epochs=30
    config.num_steps = 200
    notes = give_command_line_precedence(config, {"num_steps"})
    assert (config.num_epochs, config.num_examples, config.num_steps) == (None, None, 200)
    assert notes == ["num_steps=200 from the command line replaces the config file's "
                     "num_epochs=30"]
    validate(config)
    # Two budgets on the command line stay an error naming both.
    config = load_config()
    config.num_steps, config.num_examples = 200, 5000
    assert give_command_line_precedence(config, {"num_steps", "num_examples"}) == []
    with pytest.raises(ConfigError, match=r"exactly one of .*'num_epochs', 'num_examples', "
                                          r"'num_steps'"):
        validate(config)
    # A field given as None on the command line replaces nothing.
    config = load_config()
    config.num_steps = None
    assert give_command_line_precedence(config, {"num_steps"}) == []
    assert config.num_epochs == 30


def test_milestone_fields_are_a_pair_and_the_sweep_parser_agrees():
    # A sweep may name its base config as the CLI does; this one sets schedule_milestones.
    argv = ["bsgap.train", "--config=goyal_resnet50_tiny",
            "--config.schedule_milestone_fractions=(0.5,)",
            "--config.num_examples=1000"]
    config = parse_cli_config(argv)
    assert tuple(config.schedule_milestones) == ()
    assert tuple(config.schedule_milestone_fractions) == (0.5,)
    assert (config.num_epochs, config.num_examples) == (None, 1000)
    both = load_config(schedule_milestones=(1.0,), schedule_milestone_fractions=(0.5,))
    with pytest.raises(ConfigError, match=r"not both .*\(1\.0,\) and \(0\.5,\)"):
        validate(both)


def test_bn_group_follows_layout_is_recorded_and_warned():
    config = load_config(ghost_batch_size=None, microbatch_size=32)   # ghost over the microbatch
    r = resolve(config, num_devices=1, num_processes=1, num_train_examples=4000,
                num_eval_examples=1000, num_classes=10)
    assert r.layout.bn_group == 32 and r.to_json()["bn_group_follows_layout"] is True
    warning = bn_group_warning(r.layout, "ghost", None)
    assert "BN group is 32 examples, not the batch of 128" in warning
    assert "4 accumulation microbatches" in warning and "ghost_batch_size=32" in warning
    fixed = resolve(load_config(microbatch_size=32), num_devices=1, num_processes=1,
                    num_train_examples=4000, num_eval_examples=1000, num_classes=10)
    assert fixed.layout.bn_group == 16 and fixed.to_json()["bn_group_follows_layout"] is False
    assert bn_group_warning(fixed.layout, "ghost", 16) is None
    # 'batch' over 8 devices: the group is the per-device batch; on one device the whole batch.
    lay8 = resolve_layout(batch_size=128, num_devices=8, microbatch_size=None,
                          ghost_batch_size=None, normalization="batch")
    assert "8 devices" in bn_group_warning(lay8, "batch", None)
    lay1 = resolve_layout(batch_size=128, num_devices=1, microbatch_size=None,
                          ghost_batch_size=None, normalization="batch")
    assert bn_group_warning(lay1, "batch", None) is None


def test_config_names_and_paths_resolve_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = os.path.join(ROOT, "configs", "default.py")
    assert resolve_config_file("default") == default
    assert resolve_config_file("configs/default.py") == default
    assert resolve_config_file("digits_mlp.py:arg") == os.path.join(ROOT, "configs",
                                                                    "digits_mlp.py") + ":arg"
    own = tmp_path / "mine.py"
    own.write_text("")
    assert resolve_config_file("mine.py") == "mine.py"     # the working directory's own first
    assert {"default", "goyal_resnet50", "mishkin_fig8_tiny"} <= set(available_configs())
    with pytest.raises(ConfigFileError, match=r"--config=defualt: no such file .*default, "):
        resolve_config_file("defualt")


def test_dry_run_from_another_directory_writes_nothing(data_dir, tmp_path):
    """The default config by name, from a directory that is not the repository, with a step
    budget typed over the file's epochs and a microbatch that shrinks a layout-set BN group."""
    workdir = tmp_path / "never_created"
    result = _train(["--config=default", f"--workdir={workdir}", f"--config.data_dir={data_dir}",
                     "--config.num_steps=100", "--config.ghost_batch_size=None",
                     "--config.microbatch_size=32", "--config.num_devices=1", "--dry_run"],
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not workdir.exists() and os.listdir(tmp_path) == []
    assert "num_steps=100 from the command line replaces the config file's num_epochs=30" \
        in result.stderr
    # 4,000 examples / 128 = 31.25 steps per epoch: evals at 31, 62, 93 and the last step.
    assert "budget: 100 steps = 3.2 epochs = 12,800 examples" in out
    assert "evaluation: every 31 steps" in out and "4 evals" in out
    assert "B=128 = 1 device x 4 accumulation steps x microbatch 32" in out
    assert "BN group 32 = the microbatch, set by the layout" in out
    assert "warning: the BN group is 32 examples, not the batch of 128" in out
    assert "learning rate: 0.05 at B=128, rule 'none' x1 = 0.05" in out
    assert "MiB per device" in out
    assert ("input: images sent as float32, normalized on the host (auto: float32 examples); "
            "kept on the devices: train, eval (0.8 MiB per device of 64.0 MiB)") in out


def test_bad_command_lines_exit_2_before_any_work(tmp_path):
    two = _train(["--config=default", f"--workdir={tmp_path / 'w'}", "--config.num_steps=10",
                  "--config.num_examples=100"], cwd=tmp_path, timeout=60)
    assert two.returncode == 2 and "exactly one of" in two.stderr, two.stderr
    assert "'num_examples', 'num_steps'" in two.stderr and "Traceback" not in two.stderr
    missing = _train(["--config=nosuch", f"--workdir={tmp_path / 'w'}"], cwd=tmp_path,
                     timeout=60)
    assert missing.returncode == 2 and "--config=nosuch: no such file" in missing.stderr
    assert "goyal_resnet50" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "w").exists()


def test_every_config_field_is_described_and_docs_stand_alone():
    import re

    page = open(os.path.join(ROOT, "docs", "CONFIG.md")).read()
    described = set(re.findall(r"`([a-z_0-9]+)`", page))
    missing = [field for field in load_config().keys() if field not in described]
    assert missing == [], f"docs/CONFIG.md does not describe {missing}"
    for doc in ("README.md", "launch/README.md", "docs/DESIGN.md"):
        assert "../shared" not in open(os.path.join(ROOT, doc)).read(), doc


def test_accelerator_extras_pin_the_same_jax():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    (base,) = [d for d in project["dependencies"] if d.startswith("jax>")]
    pins = base.removeprefix("jax")
    extras = project["optional-dependencies"]
    assert {name: extras[name] for name in ("cuda12", "cuda13", "tpu")} == {
        "cuda12": [f"jax[cuda12]{pins}"], "cuda13": [f"jax[cuda13]{pins}"],
        "tpu": [f"jax[tpu]{pins}"]}
    readme = open(os.path.join(ROOT, "README.md")).read()
    for name in ("cuda12", "tpu"):
        assert f'pip install -e ".[dev,{name}]"' in readme, name

"""analysis.export: exactly the small files, never a silent overwrite."""
import os

from analysis import export


def _write(path, text="x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _sweep(root):
    for run in ("bs16-none-s0", "bs32-none-s0"):
        for name in ("config.json", "summary.json", "eval.jsonl", "metrics.jsonl",
                     "checkpoints/5/state/data", "tensorboard/events.out", "analysis/c_5.json",
                     "analysis/c_5.png", "notes.txt"):
            _write(os.path.join(root, run, name), f"{run}/{name}")
    _write(os.path.join(root, "sweep.json"))
    _write(os.path.join(root, "logs", "bs16-none-s0.log"))
    _write(os.path.join(root, "stray", "eval.jsonl"))  # no config.json: not a run directory


def test_exports_exactly_the_small_files(tmp_path, capsys):
    root, out = str(tmp_path / "sweep"), str(tmp_path / "out")
    _sweep(root)
    assert export.main([f"--root={root}", f"--out={out}"]) == 0
    copied = sorted(os.path.relpath(os.path.join(d, f), out)
                    for d, _, files in os.walk(out) for f in files)
    expected = sorted(["sweep.json"] + [f"{run}/{name}" for run in ("bs16-none-s0", "bs32-none-s0")
                                        for name in ("config.json", "summary.json", "eval.jsonl",
                                                     "metrics.jsonl", "analysis/c_5.json")])
    assert copied == expected
    with open(os.path.join(out, "bs32-none-s0", "analysis", "c_5.json")) as f:
        assert f.read() == "bs32-none-s0/analysis/c_5.json"
    assert "copied 11 file(s)" in capsys.readouterr().out
    assert export.export(root, out) == (0, 0)        # identical files: nothing to do


def test_a_different_destination_file_is_refused_then_replaced_on_request(tmp_path, capsys):
    root, out = str(tmp_path / "sweep"), str(tmp_path / "out")
    _sweep(root)
    export.export(root, out)
    _write(os.path.join(out, "bs16-none-s0", "summary.json"), "edited by hand")
    _write(os.path.join(root, "bs32-none-s0", "eval.jsonl"), "new evaluation")
    assert export.main([f"--root={root}", f"--out={out}"]) == 2
    err = capsys.readouterr().err
    assert "2 file(s)" in err and "bs16-none-s0/summary.json" in err and "--overwrite" in err
    with open(os.path.join(out, "bs32-none-s0", "eval.jsonl")) as f:
        assert f.read() == "bs32-none-s0/eval.jsonl"   # nothing copied on a conflict
    assert export.export(root, out, overwrite=True)[0] == 2
    with open(os.path.join(out, "bs16-none-s0", "summary.json")) as f:
        assert f.read() == "bs16-none-s0/summary.json"


def test_bad_roots(tmp_path, capsys):
    assert export.main([f"--root={tmp_path / 'nope'}", f"--out={tmp_path / 'o'}"]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert export.main([f"--root={tmp_path}", f"--out={tmp_path / 'o'}"]) == 2
    assert "no run directory" in capsys.readouterr().err

"""analysis.curvature and analysis.interpolate on tiny trained runs: JSON numbers against direct
library calls, a dense Hessian, a hand-written forward pass and the trainer's own evaluation;
plots written; no silent overwrite; exit-2 errors without a traceback."""
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from analysis import _common
from analysis import curvature as curvature_cli
from analysis import interpolate as interpolate_cli
from bsgap import curvature
from bsgap.restore import load_run
from bsgap.trainer import Trainer
from helpers import ROOT, tiny_config

HIDDEN = 16
GROUP_SB, GROUP_LB = 4, 8


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """Two ghost-BN MLPs (64-16-10, 1,234 parameters) on the digits: B=32 (BN group 4) and
    B=128 (BN group 8), 20 steps each, checkpoints at steps 10 and 20."""
    root = tmp_path_factory.mktemp("analysis_runs")
    out = {}
    for name, batch, group, lr in (("sb", 32, GROUP_SB, 0.1), ("lb", 128, GROUP_LB, 0.2)):
        config = tiny_config(data_dir, normalization="ghost", ghost_batch_size=group,
                             batch_size=batch, learning_rate=lr,
                             model_kwargs={"hidden_sizes": (HIDDEN,)})
        Trainer(config, str(root / name)).run()
        out[name] = str(root / name)
    return out


def mlp_logits(params, stats, images, group=None):
    """The ghost-BN MLP written out by hand: x W0 -> BN -> relu -> x W1 + b1.

    group=None: BN with the running averages `stats`; else statistics per consecutive `group`
    examples (biased variance), as ghost BN computes them in training."""
    x = images.reshape(images.shape[0], -1)
    h = x @ params["Dense_0"]["kernel"]
    bn = params["Norm_0"]["GhostBatchNorm_0"]
    if group is None:
        s = stats["Norm_0"]["GhostBatchNorm_0"]
        h = (h - s["mean"]) / jnp.sqrt(s["var"] + 1e-5)
    else:
        g = h.reshape(-1, group, h.shape[-1])
        mean = g.mean(axis=1, keepdims=True)
        var = jnp.square(g - mean).mean(axis=1, keepdims=True)
        h = ((g - mean) / jnp.sqrt(var + 1e-5)).reshape(h.shape)
    h = jax.nn.relu(h * bn["scale"] + bn["bias"])
    return h @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"]


def hand_loss(stats, group=None):
    def loss(params, batch):
        logits = mlp_logits(params, stats, jnp.asarray(batch["image"]), group)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    return loss


def batches_of(arrays, n, size):
    return [{"image": arrays["image"][s:min(s + size, n)], "label": arrays["label"][s:min(s + size, n)]}
            for s in range(0, n, size)]


_eval_logits = jax.jit(mlp_logits)   # one program per shape, not op by op


def split_eval(params, stats, arrays):
    logits = _eval_logits(params, stats, jnp.asarray(arrays["image"]))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, arrays["label"]).mean()
    correct = np.asarray(jnp.argmax(logits, -1)) == np.asarray(arrays["label"])
    return float(loss), float(np.mean(correct))


def read(path):
    with open(path) as f:
        return json.load(f)


def test_curvature_eval_mode_matches_library_dense_hessian_and_hand_computation(runs, tmp_path,
                                                                                 capsys):
    n, size = 600, 200
    args = ["--run", runs["sb"], "--num_examples", str(n), "--batch_size", str(size), "--k=2",
            "--trace_max_probes=40", "--density_steps=25", "--eps=1e-3", "--sam_rho=0.05",
            "--sam_steps=1", "--eps_max_iters=10", "--eps_starts=2", "--progress=0"]
    # (The search's accuracy is tested on its own, tests/test_curvature_mlp64.py: here its
    # bookkeeping, with a cheap search.)
    assert curvature_cli.main(args) == 0
    path = os.path.join(runs["sb"], "analysis", "curvature_20.json")
    printed = capsys.readouterr()
    out = read(path)
    assert out["complete"] and out["bn_mode"] == "eval"
    assert out["settings"]["num_examples"] == n and out["settings"]["batch_size"] == size
    assert out["examples"]["num_examples"] == n and out["examples"]["num_batches"] == 3
    assert out["run"]["step"] == 20 and out["run"]["num_parameters"] == 64 * 16 + 32 + 16 * 10 + 10

    run = load_run(runs["sb"], with_data=True)
    arrays = run.data.train.arrays
    batches = batches_of(arrays, n, size)
    loss = hand_loss(run.batch_stats)
    # Train loss / accuracy on the same examples, by the hand-written forward pass.
    sub = {k: v[:n] for k, v in arrays.items()}
    want_loss, want_acc = split_eval(run.params, run.batch_stats, sub)
    assert out["train_loss"] == pytest.approx(want_loss, rel=1e-5)
    assert out["train_accuracy"] == pytest.approx(want_acc, abs=1e-6)

    # Top eigenvalues: the library on the hand-written loss, and the dense Hessian.
    metrics = out["metrics"]
    direct = curvature.top_eigenvalues(loss, run.params, batches, k=2, seed=0)
    np.testing.assert_allclose(metrics["top_eigs"]["eigenvalues"], direct.eigenvalues, rtol=1e-4)
    assert metrics["top_eigs"]["num_hvps"] == direct.num_hvps
    flat, unravel = ravel_pytree(run.params)
    full = {k: jnp.asarray(v) for k, v in sub.items()}
    # (The hand computations below are jitted: the same numbers, one compile each instead of
    # hundreds of op-by-op ones.)
    dense = np.linalg.eigvalsh(np.asarray(
        jax.jit(jax.hessian(lambda p: loss(unravel(p), full)))(flat), np.float64))
    top = np.sort(dense)[::-1][:2]
    np.testing.assert_allclose(metrics["top_eigs"]["eigenvalues"], top, rtol=2e-3)
    # Hutchinson within 4 standard errors of the exact trace; SLQ nodes inside the spectrum.
    trace = metrics["trace"]
    assert abs(trace["trace"] - dense.sum()) <= 4 * trace["stderr"]
    nodes = np.asarray(metrics["density"]["nodes"])
    slack = 1e-3 * np.abs(dense).max()
    assert nodes.min() >= dense.min() - slack and nodes.max() <= dense.max() + slack
    np.testing.assert_allclose(np.sum(metrics["density"]["weights"], axis=1), 1.0, rtol=1e-6)
    # SAM, one step: the loss at theta + rho g / |g|, by hand.
    sam = metrics["sam"]["values"][0]
    f = jax.jit(lambda p: sum(loss(unravel(p), b) * len(b["label"]) for b in batches) / n)
    g = jax.jit(jax.grad(f))(flat)
    assert sam["loss"] == pytest.approx(float(f(flat)), rel=1e-5)
    assert sam["max_loss"] == pytest.approx(float(f(flat + 0.05 * g / jnp.linalg.norm(g))),
                                            rel=1e-5)
    # eps-sharpness: Keskar's ratio of the losses it reports, f(x) by hand, a point in the box.
    eps = metrics["eps_sharpness"]["values"][0]
    assert eps["epsilon"] == 1e-3 and eps["subspace_dim"] is None and eps["max_iters"] == 10
    assert eps["loss"] == pytest.approx(float(f(flat)), rel=1e-5)
    assert eps["max_loss"] >= eps["loss"] and 0 < eps["box_fraction"] <= 1 + 1e-9
    assert eps["sharpness"] == pytest.approx(
        100 * (eps["max_loss"] - eps["loss"]) / (1 + eps["loss"]), rel=1e-9)
    # B_simple from per-example gradients taken by hand.
    per_example = jax.jit(jax.vmap(lambda x, y: jax.grad(lambda p: loss(
        unravel(p), {"image": x[None], "label": y[None]}))(flat)))(full["image"], full["label"])
    per_example = np.asarray(per_example, np.float64)
    trace_cov = np.sum(np.var(per_example, axis=0, ddof=1))
    grad_sq = np.sum(per_example.mean(axis=0) ** 2)
    noise = metrics["noise_scale"]
    assert noise["trace_cov"] == pytest.approx(trace_cov, rel=1e-4)
    assert noise["b_simple"] == pytest.approx(trace_cov / grad_sq, rel=1e-3)
    # ... and corrected for a sample of n = 600 of the split's N examples.
    big_n = out["examples"]["num_available"]
    assert noise["population_size"] == big_n > n
    corrected = grad_sq - (1 - n / big_n) * trace_cov / n
    assert noise["b_simple_unbiased"] == pytest.approx(trace_cov / corrected, rel=1e-3)
    assert noise["small_sample"] == (n < 10 * max(noise["b_simple"], noise["b_simple_unbiased"]))
    # The terminal table (every value, then the path last) and a warning per unconverged value.
    lines = printed.out.strip().splitlines()
    assert lines[-1] == path and lines[0].split()[:3] == ["quantity", "value", "converged"]
    table = "\n".join(lines[:-1])
    for quantity in ("top-2 eigenvalues", "Hessian trace", "eps-sharpness eps=0.001 (%)",
                     "SAM sharpness rho=0.05", "B_simple (raw)", "B_simple (bias-corrected)"):
        assert quantity in table
    assert f"{trace['trace']:.5g}" in table and f"{noise['b_simple']:.5g}" in table
    assert out["converged"]["trace"] == trace["converged"]
    assert out["converged"]["top_eigs"] == metrics["top_eigs"]["converged"]
    assert ("trace did not converge" in printed.err) == (not trace["converged"])
    assert ("trace did not converge" in " ".join(out["warnings"])) == (not trace["converged"])
    assert printed.err.count("analysis.curvature: warning:") == len(out["warnings"])
    # Smith & Le from the run's lr, N, B and momentum 0.9; the HVP bookkeeping.
    assert out["smith_le"]["momentum"] == 0.9
    assert out["smith_le"]["noise_scale"] == pytest.approx(0.1 * (1437 / 32 - 1) / (1 - 0.9))
    hvps = out["num_hvps"]
    assert hvps["total"] == sum(v for k, v in hvps.items() if k != "total")
    assert hvps["top_eigs"] > 0 and hvps["trace"] == trace["num_hvps"] and hvps["density"] == 25
    # The density plot.
    png = os.path.join(runs["sb"], "analysis", out["density_plot"])
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png) > 5000


def test_curvature_train_mode_uses_ghost_batch_statistics_and_never_overwrites(runs, capsys):
    base = ["--run", runs["sb"], "--step=10", "--num_examples=203", "--bn_mode=train",
            "--metrics=top_eigs,noise_scale", "--progress=0"]
    # 6 is not a multiple of the run's BN group (4): refused before anything is measured.
    assert curvature_cli.main(base + ["--batch_size=6"]) == 2
    assert "multiple of the run's BN group of 4" in capsys.readouterr().err
    assert curvature_cli.main(base + ["--batch_size=40"]) == 0
    first = os.path.join(runs["sb"], "analysis", "curvature_10.json")
    out = read(first)
    assert out["bn_mode"] == "train" and out["metrics"]["top_eigs"]["bn_mode"] == "train"
    assert out["examples"]["num_examples"] == 200 and out["examples"]["bn_group"] == GROUP_SB
    run = load_run(runs["sb"], step=10, with_data=True)
    batches = batches_of(run.data.train.arrays, 200, 40)
    loss = hand_loss(None, group=GROUP_SB)
    direct = curvature.top_eigenvalues(loss, run.params, batches, seed=0)
    np.testing.assert_allclose(out["metrics"]["top_eigs"]["eigenvalues"], direct.eigenvalues,
                               rtol=1e-4)
    want = sum(float(loss(run.params, b)) * 40 for b in batches) / 200
    assert out["train_loss"] == pytest.approx(want, rel=1e-5)
    # Per-example gradients fall back to running averages, and say so.
    assert out["metrics"]["noise_scale"]["bn_mode"] == "eval"
    assert "bn_mode='eval'" in out["metrics"]["noise_scale"]["note"]

    before = open(first).read()
    assert curvature_cli.main(base[:-2] + ["--metrics=sam", "--progress=0", "--batch_size=40"]) == 0
    second = capsys.readouterr().out.strip().splitlines()[-1]
    assert second == os.path.join(runs["sb"], "analysis", "curvature_10-1.json")
    assert open(first).read() == before and read(second)["metrics"].keys() == {"sam"}


def test_a_failure_before_the_first_record_leaves_no_file(runs, monkeypatch):
    """A crash while the record is being assembled left an empty curvature_<step>.json, which a
    rerun could neither read nor replace (the name is claimed, never overwritten)."""
    def broken(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(curvature_cli, "smith_le", broken)
    analysis_dir = os.path.join(runs["lb"], "analysis")
    before = sorted(os.listdir(analysis_dir)) if os.path.isdir(analysis_dir) else []
    with pytest.raises(RuntimeError, match="injected"):
        curvature_cli.main(["--run", runs["lb"], "--step=10", "--num_examples=64",
                            "--metrics=noise_scale", "--bn_mode=eval", "--progress=0"])
    after = sorted(os.listdir(analysis_dir)) if os.path.isdir(analysis_dir) else []
    assert after == before


def test_curvature_errors_exit_2_with_one_paragraph(runs, tmp_path, capsys):
    cases = {
        ("--metrics=top_eig,trace",): "allowed metrics are top_eigs, trace, density, "
                                      "eps_sharpness, sam, noise_scale",
        ("--step=999",): "has no checkpoint at step 999; it has [10, 20]",
        ("--eig_tol=0",): "--eig_tol=0.0 must be a finite number > 0",
    }
    for extra, message in cases.items():
        assert curvature_cli.main(["--run", runs["sb"], *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("analysis.curvature: error:")
        assert err.count("\n") == 1
    assert curvature_cli.main(["--run", str(tmp_path)]) == 2
    assert "is not a bsgap run directory" in capsys.readouterr().err
    # A sweep root: the message names its run directories.
    sweep_root = os.path.dirname(runs["sb"])
    assert curvature_cli.main(["--run", sweep_root]) == 2
    err = capsys.readouterr().err
    assert "(a sweep root?): pass one of them, e.g. " in err and runs["sb"] in err, err
    # End to end through the interpreter: exit status 2 and no traceback.
    proc = subprocess.run([sys.executable, "-m", "analysis.curvature", "--run", runs["sb"],
                           "--metrics=hessian"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown metric(s) hessian" in proc.stderr


def test_interpolate_hold_matches_endpoints_trainer_eval_and_library(runs, tmp_path):
    alphas = [-0.5, 0.0, 0.5, 1.0]
    out_dir = str(tmp_path / "line")
    assert interpolate_cli.main(["--a", runs["sb"], "--b", runs["lb"], "--alphas=-0.5,0,0.5,1",
                                 "--out", out_dir, "--progress=0"]) == 0
    path = os.path.join(out_dir, "interpolation_sb-20_lb-20.json")
    out = read(path)
    assert out["complete"] and out["bn_stats"] == "hold" and out["alphas"] == alphas
    assert out["a"]["batch_size"] == 32 and out["b"]["batch_size"] == 128
    run_a, run_b = load_run(runs["sb"], with_data=True), load_run(runs["lb"], with_data=False)
    train, test = run_a.data.train.arrays, run_a.data.eval.arrays
    for index, run in ((1, run_a), (3, run_b)):  # alpha = 0 and 1 are the runs themselves
        loss, acc = split_eval(run.params, run.batch_stats, train)
        assert out["train_loss"][index] == pytest.approx(loss, rel=1e-5)
        assert out["train_accuracy"][index] == pytest.approx(acc, abs=1e-9)
        loss, acc = split_eval(run.params, run.batch_stats, test)
        assert out["test_loss"][index] == pytest.approx(loss, rel=1e-5)
        assert out["test_accuracy"][index] == pytest.approx(acc, abs=1e-9)
        summary = read(os.path.join(run.workdir, "summary.json"))  # the trainer's final eval
        assert out["test_accuracy"][index] == pytest.approx(summary["final_eval_accuracy"])
        assert out["test_loss"][index] == pytest.approx(summary["final_eval_loss"], rel=1e-5)
    # Every alpha against the library's line over the parameters, with the BN running averages
    # of 'hold' written out here: means linear, variances geometric (float64).
    model = _common.analysis_model(run_a.config, run_a.resolved, "eval")
    loss_fn, acc_fn = _common.variables_loss_and_accuracy_fns(model, 10)
    test_batches = batches_of(test, len(test["label"]), 1000)
    for i, alpha in enumerate(alphas):
        stats = {}
        for name in ("mean", "var"):
            a = np.asarray(run_a.batch_stats["Norm_0"]["GhostBatchNorm_0"][name], np.float64)
            b = np.asarray(run_b.batch_stats["Norm_0"]["GhostBatchNorm_0"][name], np.float64)
            stats[name] = ((1 - alpha) * a + alpha * b if name == "mean"
                           else a ** (1 - alpha) * b ** alpha).astype(np.float32)
        stats = {"Norm_0": {"GhostBatchNorm_0": stats}}
        line = curvature.interpolate(
            lambda p, batch: loss_fn({"params": p, "batch_stats": stats}, batch),
            run_a.params, run_b.params, test_batches, [alpha],
            lambda p, batch: acc_fn({"params": p, "batch_stats": stats}, batch))
        assert np.isfinite(out["test_loss"][i])
        assert out["test_loss"][i] == pytest.approx(line.losses[0], rel=1e-5)
        assert out["test_accuracy"][i] == pytest.approx(line.accuracies[0], abs=1e-6)
    png = os.path.join(out_dir, out["plot"])
    assert os.path.getsize(png) > 5000 and open(png, "rb").read(4) == b"\x89PNG"


def test_interpolate_recompute_uses_mean_batch_statistics(runs, tmp_path):
    out_dir = str(tmp_path / "recompute")
    assert interpolate_cli.main(["--a", runs["sb"], "--b", runs["lb"], "--alphas=0,1",
                                 "--bn_stats=recompute", "--recompute_examples=66",
                                 "--recompute_batch_size=10", "--out", out_dir,
                                 "--progress=0"]) == 0
    out = read(os.path.join(out_dir, "interpolation_sb-20_lb-20.json"))
    assert out["bn_stats"] == "recompute"
    info = out["bn_recompute"]
    assert info["bn_group"] == GROUP_SB and info["num_examples"] == 64 and info["batch_size"] == 8
    run_a, run_b = load_run(runs["sb"], with_data=True), load_run(runs["lb"], with_data=False)
    train = run_a.data.train.arrays
    x = np.asarray(train["image"][:64], np.float64).reshape(16, GROUP_SB, -1)
    for index, run in ((0, run_a), (1, run_b)):
        h = x @ np.asarray(run.params["Dense_0"]["kernel"], np.float64)
        stats = {"Norm_0": {"GhostBatchNorm_0": {
            "mean": h.mean(axis=1).mean(axis=0), "var": h.var(axis=1).mean(axis=0)}}}
        loss, acc = split_eval(run.params, jax.tree_util.tree_map(jnp.float32, stats), train)
        assert out["train_loss"][index] == pytest.approx(loss, rel=1e-4)
        assert out["train_accuracy"][index] == pytest.approx(acc, abs=1e-9)


def test_interpolate_refuses_different_models_before_loading(runs, tmp_path, capsys, monkeypatch):
    other = tmp_path / "wider"
    other.mkdir()
    config = read(os.path.join(runs["lb"], "config.json"))
    config["config"]["model_kwargs"] = {"hidden_sizes": [32]}
    (other / "config.json").write_text(json.dumps(config))

    def no_loading(*args, **kwargs):
        raise AssertionError("configs must be compared before checkpoints or data are loaded")

    monkeypatch.setattr("bsgap.restore.load_run", no_loading)
    assert interpolate_cli.main(["--a", runs["sb"], "--b", str(other), "--progress=0"]) == 2
    err = capsys.readouterr().err
    assert "different models (model_kwargs {'hidden_sizes': [16]} vs {'hidden_sizes': [32]})" in err
    assert err.count("\n") == 1
    monkeypatch.undo()
    assert interpolate_cli.main(["--a", runs["sb"], "--b", runs["lb"], "--step_b=7"]) == 2
    assert "has no checkpoint at step 7" in capsys.readouterr().err
    shutil.rmtree(other)


def test_progress_reports_count_every_library_evaluation():
    from bsgap.curvature import progress

    a = np.diag([3.0, 2.0, 1.0, 0.5]).astype(np.float32)
    loss = lambda p, b: 0.5 * p @ a @ p + 0.0 * jnp.sum(b["x"])  # noqa: E731
    params, batches = jnp.ones(4), [{"x": np.zeros((2, 1))}, {"x": np.zeros((3, 1))}]
    seen = {}
    with progress.on_evaluation(lambda kind, count: seen.__setitem__(
            kind, seen.get(kind, 0) + count)):
        eig = curvature.top_eigenvalues(loss, params, batches, k=1)
        sam = curvature.sam_sharpness(loss, params, batches, num_steps=3)
    assert eig.eigenvalues[0] == pytest.approx(3.0, rel=1e-4)
    assert seen == {"hvp": eig.num_hvps, "grad": 3, "loss": 1} and sam.num_steps == 3
    curvature.top_eigenvalues(loss, params, batches)  # outside the block: nothing reported
    assert seen["hvp"] == eig.num_hvps

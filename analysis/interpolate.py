"""Train and test loss and accuracy along the line between two solutions (Keskar et al. 2017,
Fig. 3): theta(alpha) = (1 - alpha) theta_a + alpha theta_b, typically a = a small-batch run and
b = a large-batch run of the same model.

    python -m analysis.interpolate --a=RUN_SB --b=RUN_LB [--step_a=N] [--step_b=N]
        [--alphas=-1:2:31 | --alphas=0,0.5,1] [--bn_stats=hold|recompute] [--out=DIR]

Writes `interpolation_<a>-<step_a>_<b>-<step_b>.json` and `.png` (the Keskar-style plot: cross-
entropy on the left axis, accuracy on the right, train solid and test dashed) into `--out`
(default: `A/analysis/`). Never overwrites: a taken name gets `-1`, `-2`, ... (the path is printed).

The two runs must have the same model: name, model_kwargs, normalization and number of classes are
compared from their config.json files before any checkpoint or data is loaded (then the parameter
shapes once loaded); a difference is an error (exit 2). The line is evaluated on run A's dataset
(a warning is printed when B's dataset differs): the whole train and test splits by default, or the
first `--num_train_examples` / `--num_test_examples`. The loss is the mean softmax cross-entropy
(no label smoothing, no weight decay, dropout off); batch norm uses running averages (eval mode),
which along the line are, per `--bn_stats`:
- 'hold' (default): means interpolated like the parameters, m(alpha) = (1 - alpha) m_a + alpha m_b,
  variances log-linearly, v(alpha) = v_a^(1 - alpha) v_b^alpha (the linear line goes negative
  outside [0, 1] and the loss there is NaN), so alpha = 0 and 1 are exactly the two checkpoints as
  they evaluate;
- 'recompute': re-estimated at every alpha as the mean of the batch statistics of training batches
  passed through the model in train mode at theta(alpha) (the first `--recompute_examples` training
  examples, in calls of `--recompute_batch_size`, statistics per group of `--bn_group` examples,
  default A's BN group) -- the usual fix for BN networks, whose interpolated running averages do not
  match the interpolated weights.
The JSON says which (`bn_stats`, 'none' for a model without batch norm).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from analysis import _common  # noqa: E402
from analysis._common import CliError  # noqa: E402

PROG = "analysis.interpolate"
BN_STATS = ("hold", "recompute")
MODEL_FIELDS = ("model", "model_kwargs", "normalization")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=_common.description(__doc__),
                                     formatter_class=_common.HelpFormatter)
    parser.add_argument("--a", required=True, help="run directory at alpha = 0 (e.g. small batch)")
    parser.add_argument("--b", required=True, help="run directory at alpha = 1 (e.g. large batch)")
    parser.add_argument("--step_a", type=int, default=None, help="A's checkpoint (default: latest)")
    parser.add_argument("--step_b", type=int, default=None, help="B's checkpoint (default: latest)")
    parser.add_argument("--alphas", default="-1:2:31",
                        help="START:STOP:NUM (inclusive linspace) or a comma-separated list")
    parser.add_argument("--bn_stats", default="hold", choices=BN_STATS,
                        help="BN running averages along the line: interpolated or recomputed")
    parser.add_argument("--recompute_examples", type=int, default=4096,
                        help="training examples whose batch statistics are averaged (0: all)")
    parser.add_argument("--recompute_batch_size", type=int, default=512,
                        help="examples per train-mode call (rounded down to a multiple of "
                             "--bn_group)")
    parser.add_argument("--bn_group", type=int, default=None,
                        help="examples per BN statistics group (default: A's resolved bn_group)")
    parser.add_argument("--num_train_examples", type=int, default=0,
                        help="first N training examples evaluated (0: the whole split)")
    parser.add_argument("--num_test_examples", type=int, default=0,
                        help="first N test examples evaluated (0: the whole split)")
    parser.add_argument("--batch_size", type=int, default=1000, help="examples per eval call")
    parser.add_argument("--out", default=None, help="output directory (default: A/analysis)")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: A's)")
    parser.add_argument("--progress", type=int, default=1, choices=(0, 1),
                        help="tqdm progress bar on stderr")
    return parser.parse_args(argv)


def parse_alphas(text: str) -> list[float]:
    """'START:STOP:NUM' (numpy.linspace, both ends included) or 'a,b,c'."""
    import numpy as np

    try:
        if ":" in text:
            start, stop, num = text.split(":")
            if int(num) < 1:
                raise ValueError
            values = np.linspace(float(start), float(stop), int(num)).tolist()
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--alphas={text!r} must be START:STOP:NUM (NUM >= 1) or a "
                       "comma-separated list of numbers") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise CliError(f"--alphas={text!r} must give at least one finite number")
    return [float(v) for v in values]


def model_differences(config_a: dict, config_b: dict) -> list[str]:
    """Human-readable differences between two runs' models (config.json contents)."""
    differences = []
    for field in MODEL_FIELDS:
        va, vb = config_a["config"].get(field), config_b["config"].get(field)
        if va != vb:
            differences.append(f"{field} {va!r} vs {vb!r}")
    na, nb = config_a["resolved"]["num_classes"], config_b["resolved"]["num_classes"]
    if na != nb:
        differences.append(f"num_classes {na!r} vs {nb!r}")
    return differences


def _shapes(tree) -> list:
    import jax
    import numpy as np

    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return [str(treedef)] + [np.shape(x) for x in leaves]


def _lerp(alpha: float, tree_a, tree_b):
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(
        lambda a, b: (1.0 - alpha) * jnp.asarray(a) + alpha * jnp.asarray(b), tree_a, tree_b)


def hold_batch_stats(alpha: float, stats_a, stats_b):
    """BN running averages at alpha under --bn_stats=hold: means linearly, like the parameters;
    variances log-linearly, v_a^(1-alpha) v_b^alpha, which equals both runs at alpha = 0 and 1 and
    stays positive where the linear line (1-alpha) v_a + alpha v_b turns negative outside [0, 1]
    (it did between this study's B=16 and B=2048 runs, and every such alpha evaluated to NaN)."""
    import jax
    import jax.numpy as jnp

    def one(path, a, b):
        a, b = jnp.asarray(a), jnp.asarray(b)
        if getattr(path[-1], "key", None) == "var":
            tiny = jnp.finfo(a.dtype).tiny
            return jnp.exp((1.0 - alpha) * jnp.log(jnp.maximum(a, tiny))
                           + alpha * jnp.log(jnp.maximum(b, tiny)))
        return (1.0 - alpha) * a + alpha * b
    return jax.tree_util.tree_map_with_path(one, stats_a, stats_b)


def _stem(run_dir: str, step: int) -> str:
    name = os.path.basename(os.path.normpath(os.path.abspath(run_dir))) or "run"
    return f"{re.sub(r'[^A-Za-z0-9_.]+', '_', name)}-{step}"


def plot_line(path: str, record: dict) -> None:
    """Keskar et al. (2017) Fig. 3 style: loss (left axis) and accuracy (right axis) vs alpha."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = record["alphas"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(alphas, record["train_loss"], color="tab:blue", ls="-", marker=".", label="train loss")
    ax.plot(alphas, record["test_loss"], color="tab:blue", ls="--", marker=".", label="test loss")
    ax.set_xlabel(r"$\alpha$  ($\theta = (1-\alpha)\,\theta_a + \alpha\,\theta_b$)")
    ax.set_ylabel("cross-entropy", color="tab:blue")
    ax.set_yscale("log")
    acc = ax.twinx()
    acc.plot(alphas, [100 * a for a in record["train_accuracy"]], color="tab:red", ls="-",
             marker=".", label="train accuracy")
    acc.plot(alphas, [100 * a for a in record["test_accuracy"]], color="tab:red", ls="--",
             marker=".", label="test accuracy")
    acc.set_ylabel("accuracy (%)", color="tab:red")
    for x in (0.0, 1.0):
        ax.axvline(x, color="gray", lw=0.6, ls=":")
    a, b = record["a"], record["b"]
    ax.set_title(f"a: {os.path.basename(a['workdir'])} (B={a['batch_size']}, step {a['step']})  "
                 f"b: {os.path.basename(b['workdir'])} (B={b['batch_size']}, step {b['step']})\n"
                 f"BN running averages: {record['bn_stats']}", fontsize=8)
    lines = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    fig.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower center", ncol=4)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _run_record(workdir: str, run, config_json: dict) -> dict:
    from bsgap import logbook

    summary_path = os.path.join(workdir, logbook.SUMMARY_FILE)
    summary = logbook.read_json(summary_path) if os.path.exists(summary_path) else {}
    c = config_json["config"]
    return {"workdir": os.path.abspath(workdir), "step": run.step, "batch_size": c["batch_size"],
            "learning_rate": run.resolved["scaled_learning_rate"], "lr_scaling": c["lr_scaling"],
            "seed": c["seed"], "dataset": c["dataset"],
            "bn_group": run.resolved["layout"]["bn_group"],
            "summary_final_eval_accuracy": summary.get("final_eval_accuracy"),
            "summary_final_eval_loss": summary.get("final_eval_loss")}


def run_line(args: argparse.Namespace) -> tuple[str, str]:
    """Evaluate the line; returns (json_path, png_path). Raises CliError for user errors."""
    alphas = parse_alphas(args.alphas)
    for name in ("recompute_examples", "num_train_examples", "num_test_examples"):
        if getattr(args, name) < 0:
            raise CliError(f"--{name}={getattr(args, name)} must be an integer >= 0")
    for name in ("recompute_batch_size", "batch_size"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name}={getattr(args, name)} must be an integer >= 1")
    if args.bn_group is not None and args.bn_group < 1:
        raise CliError(f"--bn_group={args.bn_group} must be an integer >= 1")
    config_a, config_b = _common.read_run_config(args.a), _common.read_run_config(args.b)
    differences = model_differences(config_a, config_b)
    if differences:
        raise CliError(f"runs {args.a} and {args.b} have different models ("
                       f"{'; '.join(differences)}); interpolation needs the same model in both")
    if config_a["config"]["dataset"] != config_b["config"]["dataset"]:
        print(f"{PROG}: warning: A was trained on {config_a['config']['dataset']!r} and B on "
              f"{config_b['config']['dataset']!r}; the line is evaluated on A's",
              file=sys.stderr)
    _common.quiet_libraries()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from bsgap.step import cross_entropy

    run_a = _common.load_run_checked(args.a, args.step_a, with_data=True, data_dir=args.data_dir)
    run_b = _common.load_run_checked(args.b, args.step_b, with_data=False)
    for part in ("params", "batch_stats"):
        if _shapes(getattr(run_a, part)) != _shapes(getattr(run_b, part)):
            raise CliError(f"runs {args.a} and {args.b} have {part} of different structure or "
                           "shapes (same model config, different input shape?)")

    config, resolved = run_a.config, run_a.resolved
    num_classes = resolved["num_classes"]
    bn = _common.has_batch_norm(config)
    mode = args.bn_stats if bn else "none"
    model = _common.analysis_model(config, resolved, "eval")
    train, train_info = _common.select_examples(_common.split_arrays(run_a.data, "train"),
                                                args.num_train_examples, "first", 0)
    test, test_info = _common.select_examples(_common.split_arrays(run_a.data, "eval"),
                                              args.num_test_examples, "first", 0)
    splits = {"train": _common.make_batches(train, args.batch_size),
              "test": _common.make_batches(test, args.batch_size)}

    @jax.jit
    def sums(variables, batch):
        logits = model.apply(variables, batch["image"], train=False)
        loss = cross_entropy(logits, batch["label"], num_classes)
        correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
        return jnp.sum(loss), jnp.sum(correct)

    recompute = None
    if mode == "recompute":
        group = args.bn_group or int(resolved["layout"]["bn_group"])
        stats_model = _common.analysis_model(config, resolved, "train", bn_group=group)
        stats_fn = _common.batch_statistics_fn(stats_model)
        rows, rec_info = _common.select_examples(_common.split_arrays(run_a.data, "train"),
                                                 args.recompute_examples, "first", 0,
                                                 multiple_of=group)
        call = max(group, args.recompute_batch_size - args.recompute_batch_size % group)
        stats_batches = _common.make_batches(rows, call)
        rec_info.update(bn_group=group, batch_size=call, num_batches=len(stats_batches))
        recompute = (stats_fn, stats_batches, rec_info)

    out_dir = args.out or os.path.join(args.a, "analysis")
    path = _common.claim_result_path(
        out_dir, f"interpolation_{_stem(args.a, run_a.step)}_{_stem(args.b, run_b.step)}")
    png_path = path[:-len(".json")] + ".png"
    descriptions = {
        "hold": "running means interpolated like the parameters, (1-alpha) m_a + alpha m_b; "
                "running variances log-linearly, v_a^(1-alpha) v_b^alpha (positive at every "
                "alpha)",
        "recompute": "running averages recomputed at each alpha: mean over training batches of "
                     "the batch statistics at theta(alpha), model in train mode",
        "none": "the model has no batch norm"}
    record = {
        "complete": False,
        "settings": {k: v for k, v in vars(args).items() if k != "progress"},
        "a": _run_record(args.a, run_a, config_a), "b": _run_record(args.b, run_b, config_b),
        "model": {f: config_a["config"][f] for f in MODEL_FIELDS} | {"num_classes": num_classes},
        "loss": "mean softmax cross-entropy (no label smoothing, no weight decay, dropout off)",
        "bn_stats": mode, "bn_stats_description": descriptions[mode],
        "bn_recompute": recompute[2] if recompute else None,
        "examples": {"train": train_info, "test": test_info, "dataset": config.dataset,
                     "test_split": run_a.data.eval_split, "batch_size": args.batch_size},
        "distance": float(np.sqrt(sum(
            float(np.sum((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2))
            for x, y in zip(jax.tree_util.tree_leaves(run_a.params),
                            jax.tree_util.tree_leaves(run_b.params))))),
        "alphas": alphas, "train_loss": [], "train_accuracy": [], "test_loss": [],
        "test_accuracy": [], "environment": _common.environment(),
    }
    _common.write_json(path, record)

    iterator = alphas
    if args.progress:
        from tqdm import tqdm

        iterator = tqdm(alphas, desc="alpha", unit="point", file=sys.stderr, dynamic_ncols=True)
    for alpha in iterator:
        params = _lerp(alpha, run_a.params, run_b.params)
        if mode == "recompute":
            stats_fn, stats_batches, _ = recompute
            batch_stats = _common.recompute_batch_stats(stats_fn, params, run_a.batch_stats,
                                                        stats_batches)
        else:
            batch_stats = hold_batch_stats(alpha, run_a.batch_stats, run_b.batch_stats)
        variables = {"params": params, "batch_stats": batch_stats}
        for split, batches in splits.items():
            loss_sum, correct, count = 0.0, 0.0, 0
            for batch in batches:
                loss, right = sums(variables, batch)
                loss_sum += float(loss)
                correct += float(right)
                count += int(batch["label"].shape[0])
            record[f"{split}_loss"].append(loss_sum / count)
            record[f"{split}_accuracy"].append(correct / count)
        _common.write_json(path, record)
    plot_line(png_path, record)
    record["plot"] = os.path.basename(png_path)
    record["complete"] = True
    _common.write_json(path, record)
    return path, png_path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        path, _ = run_line(args)
    except CliError as err:
        return _common.fail(PROG, err)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Top Hessian eigenvalue(s): our Lanczos vs our power iteration vs PyHessian, HVPs and seconds.

Issue 4's BENCHMARKS.md numbers. In one process, on the same CPU, for the same loss at the same
parameters:

* reference: the exact spectrum (synthetic problem) or our Lanczos run far past convergence from
  another start vector (`--reference_steps`);
* ours, Lanczos (`bsgap.curvature.lanczos.lanczos_top_eigenvalues`, the algorithm behind
  `curvature.top_eigenvalues(method='lanczos')`) and power iteration with deflation
  (`power_top_eigenvalues`, behind method='power'), each at the library defaults tol=1e-3
  (relative residual ||Hv - t v|| <= tol |t|; Lanczos also needs the next max(3, k) Ritz
  values converged and at least max(20, 2 (k + guard)) steps) and max_iters=100, on one
  `DatasetObjective` whose HVP is compiled before the clock starts;
* PyHessian 0.1 itself (`pyhessian.hessian(model, criterion, dataloader=...).eigenvalues()` at its
  defaults maxIter=100, tol=1e-3 on the relative change of v^T H v between iterations) on a
  PyTorch copy of the model with the same weights; the script checks that the PyTorch loss and
  one HVP match ours before timing;
* with --top_n=1, traces of the estimate after every HVP (Lanczos: the top Ritz value of T_m, run
  `--trace_steps` steps without stopping; power / PyHessian: the Rayleigh quotient v^T H v), from
  which "HVPs (seconds) to relative error <= 1e-2, 1e-3, 1e-4" is read against the reference;
  `--pyhessian_trace_steps=N` reads PyHessian's from a second run of its power iteration with the
  stopping test off (tol=0, N iterations), since its default stop can end short of 1e-3.

Problems (`--problem`):
* `resnet20` (default): ResNet-20 (the CIFAR ResNet: 3x3 basic blocks with 16/32/64 filters,
  batch norm; 272,186 parameters for 1 input channel and 10 classes) trained for `--train_steps`
  with the bsgap Trainer on the embedded 8x8 sklearn digits (B=128, lr 0.1, momentum), measured
  on all 1,437 training images (the dataset has no more), mean cross-entropy, batch norm with
  running averages (= PyHessian's `model.eval()`). `--run=DIR [--step=N]` measures an existing
  ResNet-20 run instead (e.g. CIFAR-10 with `--num_examples=4096`).
* `synthetic`: least squares mean((x^T w - y)^2) in `--dim` parameters on `--num_examples`
  examples whose Hessian 2 X^T X / n has the exact spectrum lambda_i = gap^(i-1) for the top 10
  (`--gap`) and uniform on [0, 0.1] below: the regime where the top eigenvalues cluster.

    pip install torch==2.13.0 pyhessian==0.1    # PyHessian needs torch (not a bsgap dependency)
    python benchmarks/curvature_top_eig.py [--problem=resnet20|synthetic] [--top_n=1] [--out=F]

Without torch/pyhessian installed, `--pyhessian=0` skips the PyHessian rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
THRESHOLDS = (1e-2, 1e-3, 1e-4)


def train_default_run(workdir: str, data_dir: str, steps: int) -> None:
    """ResNet-20 with batch norm on the embedded digits, one device, momentum SGD."""
    import importlib.util

    import tensorflow_datasets as tfds

    import bsgap.data.builders  # noqa: F401  (registers the embedded builders)
    from bsgap.trainer import Trainer

    tfds.builder("sklearn_digits", data_dir=data_dir).download_and_prepare()
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, "configs/default.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    c.dataset, c.data_dir, c.model, c.normalization = "sklearn_digits", data_dir, "resnet20", "batch"
    c.model_kwargs = {}
    c.batch_size, c.num_devices, c.learning_rate, c.reference_batch_size = 128, 1, 0.1, 128
    c.num_epochs, c.num_steps, c.eval_every_steps = None, steps, steps
    c.checkpoint_every_steps, c.target_accuracy = steps, None
    c.tensorboard, c.progress_bar, c.eval_batch_size = False, False, 360
    Trainer(c, workdir).run()


# ----------------------------------------------------------------------------- PyTorch twin
def torch_resnet(flax_params: dict, flax_stats: dict, config, num_classes: int):
    """A PyTorch copy of bsgap's ResNet (CIFAR stem, basic blocks, eval-mode BN) with its weights.

    XLA 'SAME' padding (pad total max((ceil(n/s)-1) s + k - n, 0), the smaller half first) is
    reproduced with F.pad, since PyTorch's symmetric padding differs for stride-2 3x3 convs.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    def conv_weight(kernel):  # flax (kh, kw, in, out) -> torch (out, in, kh, kw)
        return torch.tensor(np.transpose(np.asarray(kernel), (3, 2, 0, 1)).copy())

    def same_pad(x, k, s):
        padding = []
        for n in (x.shape[3], x.shape[2]):  # F.pad order: last dim first
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            padding += [total // 2, total - total // 2]
        return F.pad(x, padding)

    class Conv(nn.Module):
        def __init__(self, kernel, stride):
            super().__init__()
            self.weight = nn.Parameter(conv_weight(kernel))
            self.k, self.s = int(np.shape(kernel)[0]), stride

        def forward(self, x):
            return F.conv2d(same_pad(x, self.k, self.s), self.weight, stride=self.s)

    def bn(p, s):
        layer = nn.BatchNorm2d(int(np.shape(p["scale"])[0]), eps=1e-5)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(np.asarray(p["scale"])))
            layer.bias.copy_(torch.tensor(np.asarray(p["bias"])))
            layer.running_mean.copy_(torch.tensor(np.asarray(s["mean"])))
            layer.running_var.copy_(torch.tensor(np.asarray(s["var"])))
        return layer

    def norm(p, s, name):
        return bn(p[name]["GhostBatchNorm_0"], s[name]["GhostBatchNorm_0"])

    class Block(nn.Module):
        def __init__(self, p, s, stride):
            super().__init__()
            self.conv0, self.norm0 = Conv(p["Conv_0"]["kernel"], stride), norm(p, s, "Norm_0")
            self.conv1, self.norm1 = Conv(p["Conv_1"]["kernel"], 1), norm(p, s, "Norm_1")
            self.short = None
            if "Conv_2" in p:
                self.short = nn.Sequential(Conv(p["Conv_2"]["kernel"], stride),
                                           norm(p, s, "Norm_2"))

        def forward(self, x):
            y = F.relu(self.norm0(self.conv0(x)))
            y = self.norm1(self.conv1(y))
            return F.relu((x if self.short is None else self.short(x)) + y)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            p, s = flax_params, flax_stats
            self.stem, self.stem_norm = Conv(p["Conv_0"]["kernel"], 1), norm(p, s, "Norm_0")
            blocks, stage_sizes = [], (3, 3, 3)
            index = 0
            for stage, size in enumerate(stage_sizes):
                for block in range(size):
                    name = f"_Block_{index}"
                    blocks.append(Block(p[name], s[name], 2 if stage > 0 and block == 0 else 1))
                    index += 1
            self.blocks = nn.Sequential(*blocks)
            dense = p["Dense_0"]
            self.fc = nn.Linear(*np.shape(dense["kernel"]))
            with torch.no_grad():
                self.fc.weight.copy_(torch.tensor(np.asarray(dense["kernel"]).T.copy()))
                self.fc.bias.copy_(torch.tensor(np.asarray(dense["bias"])))

        def forward(self, x):
            x = F.relu(self.stem_norm(self.stem(x)))
            x = self.blocks(x)
            return self.fc(x.mean(dim=(2, 3)))

    if config.model != "resnet20" or config.normalization not in ("batch", "ghost"):
        raise SystemExit("the PyTorch twin covers resnet20 with batch norm only; "
                         "pass --pyhessian=0 for other models")
    return Net().eval()


def torch_batches(batches):
    import numpy as np
    import torch

    out = []
    for b in batches:
        image = np.asarray(b["image"], np.float32)
        if image.ndim == 3:
            image = image[..., None]
        out.append((torch.tensor(np.transpose(image, (0, 3, 1, 2)).copy()),
                    torch.tensor(np.asarray(b["label"], np.int64))))
    return out


# ----------------------------------------------------------------------------- problems
@dataclass
class Problem:
    """A loss in JAX (objective) and its PyTorch twin, with reference top eigenvalues."""

    description: dict
    objective: Any                       # bsgap.curvature.hvp.DatasetObjective
    reference: Any = None                # np.ndarray, top eigenvalues descending (None: Lanczos)
    torch_twin: Callable | None = None   # () -> (model, criterion, data, to_torch(flat) -> list)
    extra: dict = field(default_factory=dict)


def resnet_problem(args) -> Problem:
    import jax
    import numpy as np

    from analysis import _common
    from bsgap.curvature.hvp import DatasetObjective
    from bsgap.restore import load_run

    run_dir, train_seconds = args.run, None
    if run_dir is None:
        run_dir = args.workdir or tempfile.mkdtemp(prefix="bsgap_bench_resnet20_")
        data_dir = args.data_dir or os.path.join(run_dir, "tfds")
        if not os.path.exists(os.path.join(run_dir, "config.json")):
            start = time.perf_counter()
            train_default_run(run_dir, data_dir, args.train_steps)
            train_seconds = time.perf_counter() - start
    run = load_run(run_dir, args.step, data_dir=args.data_dir)
    config, resolved = run.config, run.resolved
    model = _common.analysis_model(config, resolved, "eval")
    arrays, examples = _common.select_examples(_common.split_arrays(run.data, "train"),
                                               args.num_examples, "first", 0)
    batches = _common.make_batches(arrays, args.batch_size)
    loss_fn, accuracy_fn = _common.loss_and_accuracy_fns(model, run.batch_stats,
                                                         resolved["num_classes"], False)
    objective = DatasetObjective(loss_fn, run.params, batches)
    acc = jax.jit(accuracy_fn)
    extra = {"train_loss": objective.loss(),
             "train_accuracy": _common.weighted_mean(lambda b: acc(run.params, b), batches)}
    description = {"problem": "resnet20", "workdir": run_dir, "step": run.step,
                   "model": config.model, "dataset": config.dataset,
                   "normalization": config.normalization, "bn_mode": "eval",
                   "loss": "mean cross-entropy", "num_parameters": objective.dim,
                   "train_seconds": train_seconds, "examples": examples,
                   "batch_size": args.batch_size}

    def twin():
        import torch
        from jax.flatten_util import ravel_pytree

        unravel = ravel_pytree(run.params)[1]
        net = torch_resnet(run.params, run.batch_stats, config, resolved["num_classes"])

        def to_torch(flat):
            tree = unravel(np.asarray(flat, np.float32))
            copy = torch_resnet(tree, run.batch_stats, config, resolved["num_classes"])
            return [p.detach().clone() for p in copy.parameters()]
        return net, torch.nn.CrossEntropyLoss(), torch_batches(batches), to_torch
    return Problem(description, objective, None, twin, extra)


def synthetic_problem(args) -> Problem:
    """Least squares with H = 2 X^T X / n = V diag(lambda) V^T (exact spectrum, float64 build)."""
    import jax.numpy as jnp
    import numpy as np

    from bsgap.curvature.hvp import DatasetObjective

    rng = np.random.default_rng(args.seed)
    d, n = args.dim, args.num_examples
    top = args.gap ** np.arange(10)
    bulk = rng.uniform(0.0, 0.1, d - 10)
    spectrum = np.concatenate([top, np.sort(bulk)[::-1]])
    u = np.linalg.qr(rng.standard_normal((n, d)))[0]             # n x d, orthonormal columns
    v = np.linalg.qr(rng.standard_normal((d, d)))[0]
    x = (np.sqrt(n / 2.0) * u * np.sqrt(spectrum)) @ v.T          # 2 X^T X / n = V L V^T
    y = x @ rng.standard_normal(d) / np.sqrt(d) + 0.1 * rng.standard_normal(n)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    batches = [{"x": x32[s:s + args.batch_size], "y": y32[s:s + args.batch_size]}
               for s in range(0, n, args.batch_size)]

    def loss_fn(params, batch):
        return jnp.mean(jnp.square(batch["x"] @ params["w"] - batch["y"]))

    objective = DatasetObjective(loss_fn, {"w": np.zeros(d, np.float32)}, batches)
    description = {"problem": "synthetic", "loss": "mean squared error of a linear model",
                   "num_parameters": d, "examples": {"num_examples": n},
                   "batch_size": args.batch_size, "gap": args.gap,
                   "spectrum": "lambda_i = gap^(i-1), i <= 10; uniform [0, 0.1] below"}

    def twin():
        import torch

        net = torch.nn.Linear(d, 1, bias=False)
        with torch.no_grad():
            net.weight.zero_()
        data = [(torch.tensor(b["x"]), torch.tensor(b["y"][:, None])) for b in batches]

        def to_torch(flat):
            return [torch.tensor(np.asarray(flat, np.float32)[None, :])]
        return net, torch.nn.MSELoss(), data, to_torch
    return Problem(description, objective, spectrum, twin)


# ----------------------------------------------------------------------------- measurements
def first_reaching(trace: list[dict], reference: float, threshold: float) -> dict | None:
    """The first trace point whose estimate is within threshold * |reference| of it."""
    for point in trace:
        if abs(point["estimate"] - reference) <= threshold * abs(reference):
            return {"hvps": point["hvps"], "seconds": point["seconds"]}
    return None


def max_relative_error(values, reference) -> float:
    import numpy as np

    values = np.sort(np.asarray(values, np.float64))[::-1]
    reference = np.asarray(reference, np.float64)[:len(values)]
    return float(np.max(np.abs(values - reference) / np.abs(reference)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", default="resnet20", choices=("resnet20", "synthetic"))
    parser.add_argument("--run", default=None, help="existing run dir (default: train ResNet-20)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint (default: latest)")
    parser.add_argument("--workdir", default=None, help="where to train the default run")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir for the default run")
    parser.add_argument("--train_steps", type=int, default=300)
    parser.add_argument("--num_examples", type=int, default=4096, help="0: whole train split")
    parser.add_argument("--batch_size", type=int, default=512)
    parser.add_argument("--dim", type=int, default=2000, help="synthetic: parameters")
    parser.add_argument("--gap", type=float, default=0.95, help="synthetic: lambda_2 / lambda_1")
    parser.add_argument("--top_n", type=int, default=1)
    parser.add_argument("--reference_steps", type=int, default=60)
    parser.add_argument("--trace_steps", type=int, default=40)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max_iters", type=int, default=100)
    parser.add_argument("--pyhessian", type=int, default=1, choices=(0, 1))
    parser.add_argument("--pyhessian_trace_steps", type=int, default=0,
                        help="also run PyHessian's power iteration this long with tol=0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the result JSON here too")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from analysis import _common
    from bsgap.curvature.lanczos import (lanczos_top_eigenvalues, lanczos_tridiagonal,
                                         ritz_top_k)
    from bsgap.curvature.power import power_top_eigenvalues

    _common.quiet_libraries()
    problem = resnet_problem(args) if args.problem == "resnet20" else synthetic_problem(args)
    objective, k = problem.objective, args.top_n
    result = {"machine": {"python": platform.python_version(), "jax": jax.__version__,
                          "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(),
                          "processor": platform.processor() or platform.machine()},
              "problem": problem.description, **problem.extra, "top_n": k, "tol": args.tol,
              "max_iters": args.max_iters}
    print(f"{args.problem}: {objective.dim:,} parameters, "
          f"{objective.num_examples} examples in {len(objective.batches)} batches", file=sys.stderr)

    start = time.perf_counter()
    probe = jax.random.normal(jax.random.key(99), (objective.dim,), objective.dtype)
    hv_jax = np.asarray(objective.hvp(probe), np.float64)
    result["jax_compile_and_first_hvp_seconds"] = time.perf_counter() - start
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(objective.hvp(probe))
        samples.append(time.perf_counter() - start)
    result["jax_seconds_per_hvp_samples"] = samples
    result["jax_seconds_per_hvp"] = float(np.median(samples))

    # Reference top-k.
    if problem.reference is None:
        start = time.perf_counter()
        v_ref = jax.random.normal(jax.random.key(args.seed + 1000), (objective.dim,),
                                  objective.dtype)
        alphas, betas, beta_next, _ = lanczos_tridiagonal(objective.hvp, v_ref,
                                                          args.reference_steps)
        values, residuals = ritz_top_k(alphas, betas, beta_next, k + 1)
        reference = np.asarray(values, np.float64)
        result["reference"] = {"source": f"Lanczos, {len(alphas)} steps, another start vector",
                               "eigenvalues": reference.tolist(),
                               "relative_residuals": (residuals / np.abs(values)).tolist(),
                               "seconds": time.perf_counter() - start}
    else:
        reference = np.asarray(problem.reference, np.float64)
        result["reference"] = {"source": "exact (constructed spectrum)",
                               "eigenvalues": reference[:k + 1].tolist()}
    print(f"reference top eigenvalues {np.round(reference[:k + 1], 6).tolist()}", file=sys.stderr)

    key = jax.random.key(args.seed)
    v0 = jax.random.normal(key, (objective.dim,), objective.dtype)
    methods: dict[str, dict] = {}

    def run_ours(name, fn):
        before = objective.num_hvps
        start = time.perf_counter()
        values, _, _, converged = fn()
        methods[name] = {"eigenvalues": np.sort(values)[::-1].tolist(),
                         "hvps": objective.num_hvps - before,
                         "seconds": time.perf_counter() - start, "converged": bool(converged),
                         "stopping": f"relative residual <= {args.tol:g}"
                                     + (" for the top k + guard Ritz values, >= min_steps steps"
                                        if "lanczos" in name else "")}
        print(f"{name}: {methods[name]['hvps']} HVPs, {methods[name]['eigenvalues']}",
              file=sys.stderr)

    run_ours("ours_lanczos", lambda: lanczos_top_eigenvalues(
        objective.hvp, v0, k, args.tol, args.max_iters))
    power_trace: list[dict] = []
    clock = [time.perf_counter()]

    def traced_hvp(v):
        w = objective.hvp(v)
        power_trace.append({"hvps": len(power_trace) + 1,
                            "seconds": time.perf_counter() - clock[0],
                            "estimate": float(jnp.vdot(v, w))})
        return w

    clock[0] = time.perf_counter()
    run_ours("ours_power", lambda: power_top_eigenvalues(
        traced_hvp, objective.dim, objective.dtype, k, args.tol, args.max_iters, key))
    if k == 1:
        methods["ours_power"]["trace"] = power_trace
        trace: list[dict] = []
        clock[0] = time.perf_counter()

        def record(alphas_, betas_, beta_next_):
            trace.append({"hvps": len(alphas_), "seconds": time.perf_counter() - clock[0],
                          "estimate": float(ritz_top_k(alphas_, betas_, beta_next_, 1)[0][0])})
            return False

        lanczos_tridiagonal(objective.hvp, v0, args.trace_steps + 1, stop=record)
        methods["ours_lanczos"]["trace"] = trace

    if args.pyhessian:
        methods["pyhessian"] = run_pyhessian(problem, probe, hv_jax, k, args, result)
    for method in methods.values():
        method["max_relative_error"] = max_relative_error(method["eigenvalues"], reference)
        if "trace" in method:
            for t in THRESHOLDS:
                method[f"to_{t:g}"] = first_reaching(
                    method.get("untruncated_trace", method["trace"]), reference[0], t)
    result["methods"] = methods
    if "pyhessian" in methods:
        p = methods["pyhessian"]["hvps"]
        result["hvp_ratio_lanczos_to_pyhessian"] = methods["ours_lanczos"]["hvps"] / p
        result["hvp_ratio_power_to_pyhessian"] = methods["ours_power"]["hvps"] / p
    result["machine"]["load_average_after"] = os.getloadavg()
    if args.out:
        with open(args.out, "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    print_table(result)


def run_pyhessian(problem, probe, hv_jax, k, args, result) -> dict:
    """PyHessian's eigenvalues() at its defaults on the PyTorch twin; checks the twin first."""
    import numpy as np
    import torch
    from pyhessian import hessian

    torch.manual_seed(args.seed)
    # XLA flushes float32 denormals to zero on the CPU; PyTorch does not by default, and near a
    # minimum (loss ~1e-4) the first HVPs from a random vector are full of denormals, which made
    # them 10-20x slower here (11-17 s instead of ~1 s). Same arithmetic for both: flush.
    torch.set_flush_denormal(True)
    net, criterion, data, to_torch = problem.torch_twin()
    with torch.no_grad():
        total = sum(float(criterion(net(x), y)) * len(y) for x, y in data)
    torch_loss = total / sum(len(y) for _, y in data)
    jax_loss = problem.objective.loss()
    h = hessian(net, criterion, dataloader=data, cuda=False)
    v = to_torch(np.asarray(probe))
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        _, hv_torch = h.dataloader_hv_product(v)
        samples.append(time.perf_counter() - start)
    ours = np.concatenate([t.detach().numpy().ravel() for t in to_torch(hv_jax)])
    theirs = np.concatenate([t.detach().numpy().ravel() for t in hv_torch])
    check = {"torch_loss": torch_loss, "jax_loss": jax_loss,
             "loss_relative_difference": abs(torch_loss - jax_loss) / abs(jax_loss),
             "hvp_relative_difference": float(np.linalg.norm(ours - theirs)
                                              / np.linalg.norm(ours))}
    result["pytorch_twin_check"] = check
    result["torch_seconds_per_hvp_samples"] = samples
    result["torch_seconds_per_hvp"] = float(np.median(samples))
    result["torch_threads"] = torch.get_num_threads()
    print(f"PyTorch twin: loss rel. diff {check['loss_relative_difference']:.2e}, HVP rel. diff "
          f"{check['hvp_relative_difference']:.2e}", file=sys.stderr)
    if check["hvp_relative_difference"] > 1e-3:
        raise SystemExit("the PyTorch twin's HVP differs from ours; the comparison is void")

    trace: list[dict] = []
    original = h.dataloader_hv_product
    clock = time.perf_counter()

    def counted(v):
        eigenvalue, hv = original(v)
        trace.append({"hvps": len(trace) + 1, "seconds": time.perf_counter() - clock,
                      "estimate": float(eigenvalue)})
        return eigenvalue, hv

    h.dataloader_hv_product = counted
    clock = start = time.perf_counter()
    eigenvalues, _ = h.eigenvalues(maxIter=100, tol=1e-3, top_n=k)
    print(f"PyHessian: {len(trace)} HVPs, {eigenvalues}", file=sys.stderr)
    out = {"eigenvalues": sorted((float(e) for e in eigenvalues), reverse=True),
           "hvps": len(trace), "seconds": time.perf_counter() - start,
           "converged": len(trace) < 100 * k,
           "stopping": "relative change of v^T H v between iterations < 1e-3 (PyHessian 0.1 "
                       "defaults maxIter=100, tol=1e-3); it returns the estimate of the "
                       "iteration before the one that met the test"}
    if k == 1:
        out["trace"] = trace
        if args.pyhessian_trace_steps:
            # Its default stop ends early and short of 1e-3 on clustered spectra; run the same
            # power iteration with the test switched off to see how many HVPs it needs.
            long_trace: list[dict] = []
            trace = long_trace
            clock = time.perf_counter()
            torch.manual_seed(args.seed)
            h.eigenvalues(maxIter=args.pyhessian_trace_steps, tol=0.0, top_n=1)
            out["untruncated_trace"] = long_trace
    return out


def print_table(result: dict) -> None:
    ref = result["reference"]["eigenvalues"]
    print(f"\nreference {ref}; JAX {result['jax_seconds_per_hvp']:.3f} s/HVP"
          + (f", PyTorch {result['torch_seconds_per_hvp']:.3f} s/HVP"
             if "torch_seconds_per_hvp" in result else ""))
    traced = result["top_n"] == 1
    print("| method | HVPs (default stop) | seconds | eigenvalue(s) | max rel. error |"
          + ("".join(f" HVPs (s) to {t:g} |" for t in THRESHOLDS) if traced else ""))
    print("|---|---|---|---|---|" + ("---|" * len(THRESHOLDS) if traced else ""))
    for name, m in result["methods"].items():
        row = (f"| {name} | {m['hvps']} | {m['seconds']:.1f} | "
               f"{', '.join(f'{e:.6g}' for e in m['eigenvalues'])} | "
               f"{m['max_relative_error']:.1e} |")
        if traced:
            for t in THRESHOLDS:
                r = m.get(f"to_{t:g}")
                row += " not reached |" if r is None else f" {r['hvps']} ({r['seconds']:.1f}) |"
        print(row)


if __name__ == "__main__":
    main()

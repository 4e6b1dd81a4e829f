"""advice.png: the advisor's one page -- examples/s vs B; predicted (each estimate) and, where a
sweep measured them, actual steps to the target vs B; predicted seconds vs B with the choice."""
from __future__ import annotations

COLORS = {"noise_scale": "tab:red", "noise_scale_online": "tab:orange", "branched": "tab:green", "sweep": "tab:purple"}


def plot_advice(advice: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bsgap import atomic_file

    speed = advice["throughput"]
    sizes = sorted(int(b) for b in speed)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    ax.plot(sizes, [speed[b]["examples_per_second"] for b in sizes], "o-",
            label="with the input pipeline")
    ax.plot(sizes, [speed[b]["examples_per_second_step_alone"] for b in sizes], "s--",
            label="compiled step alone")
    ax.set_ylabel("examples / s")
    ax.set_title("computational speed on this machine")
    for name, p in advice["predictions"].items():
        label = f"{name}: B_crit ≈ {p['b_crit']:.3g}"
        bs = [r["batch_size"] for r in p["predicted"]]
        axes[1].plot(bs, [r["steps_to_target"] for r in p["predicted"]], "-",
                     color=COLORS[name], label=label)
        axes[2].plot(bs, [r["seconds_to_target"] for r in p["predicted"]], "-",
                     color=COLORS[name], label=label)
    sweep = advice.get("sweep")
    if sweep:
        measured = {int(b): s for b, s in sweep["measured_steps_to_target"].items() if s}
        axes[1].plot(sorted(measured), [measured[b] for b in sorted(measured)], "ko",
                     label="measured (sweep, best lr per B)")
    p = advice["pilot"]
    axes[1].plot([p["batch_size"]], [p["steps_to_target"]], "r*", ms=12, label="pilot")
    axes[1].set_ylabel(f"steps to {advice['target_accuracy']:g} accuracy")
    axes[1].set_title("convergence speed (S_min from the pilot)")
    rec = advice["recommended_batch_size"]
    if rec is not None:
        lo, hi = advice["batch_size_range"]
        axes[2].axvspan(lo / 1.1, hi * 1.1, color="0.85", label="within 10% of the fastest")
        axes[2].axvline(rec, color="k", lw=1, label=f"recommended B={rec}")
    axes[2].set_ylabel("predicted seconds of training steps")
    axes[2].set_title(f"time to target (estimate used: {advice['estimate_used']})")
    for a in axes:
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel("batch size B")
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file.replacing(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)

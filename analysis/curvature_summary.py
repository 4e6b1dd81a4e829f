"""The curvature CLI's terminal summary: one row per measured value with how it converged, and a
warning for every value that did not (analysis/curvature.py prints both and stores the warnings
in its JSON as `warnings`, and each metric's convergence as `converged`).

Works on the JSON record alone (the library results' `to_json()` dicts), so it can also be
applied to a finished curvature_<step>.json.
"""
from __future__ import annotations

import math


def _g(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def _top_eigs(m: dict, settings: dict):
    values = ", ".join(_g(v, 5) for v in m["eigenvalues"])
    res = max(m["residuals"], default=float("nan"))
    detail = f"{m['num_hvps']} HVPs, max rel. residual {_g(res, 2)} (tol {_g(m['tol'], 2)})"
    warn = None if m["converged"] else (
        f"top_eigs did not converge: relative residual {_g(res, 2)} > tol {_g(m['tol'], 2)} "
        f"after {m['num_hvps']} HVPs (cap --eig_max_iters); the values may be wrong")
    yield ("top_eigs", f"top-{len(m['eigenvalues'])} eigenvalues", values, m["converged"],
           detail), warn


def _trace(m: dict, settings: dict):
    rel = m["stderr"] / abs(m["trace"]) if m["trace"] else float("nan")
    detail = (f"{m['num_hvps']} probes, rel. stderr {_g(100 * rel, 2)}% "
              f"(tol {_g(100 * m['tol'], 2)}%)")
    warn = None if m["converged"] else (
        f"trace did not converge: relative standard error {_g(100 * rel, 2)}% > tol "
        f"{_g(100 * m['tol'], 2)}% at the cap of {m['num_hvps']} probes (--trace_max_probes)")
    yield ("trace", "Hessian trace", f"{_g(m['trace'], 5)} ± {_g(m['stderr'], 2)}",
           m["converged"], detail), warn


def _density(m: dict, settings: dict):
    steps = len(m["nodes"][0]) if m["nodes"] else 0
    yield ("density", "spectral density (SLQ)", f"{len(m['nodes'])} probe(s) x {steps} steps",
           None, "fixed steps (no convergence test)"), None


def _eps(m: dict, settings: dict):
    for v in m["values"]:
        converged = v.get("converged")
        values = [s["value"] - v["loss"] for s in v.get("searches", [])]
        spread = (1 - min(values) / max(values)) if values and max(values) > 0 else 0.0
        detail = (f"{v.get('method', '?')}, {v.get('num_iters', '?')} iters, "
                  f"{_g(100 * v.get('edge_fraction', float('nan')), 3)}% of coords at the edge, "
                  f"{len(values)} searches within {_g(100 * spread, 2)}%")
        warn = None if converged is not False else (
            f"eps_sharpness eps={v['epsilon']:g}: the best search stopped at the limit of "
            f"{v['max_iters']} iterations (--eps_max_iters): a lower bound, maybe a loose one")
        yield ("eps_sharpness", f"eps-sharpness eps={v['epsilon']:g} (%)", _g(v["sharpness"], 5),
               converged, detail), warn


def _sam(m: dict, settings: dict):
    for v in m["values"]:
        fixed = v.get("tol") is None
        converged = None if fixed else v.get("converged")
        detail = (f"{v['num_steps']} steps" + (" (fixed --sam_steps)" if fixed else
                                               f", tol {_g(v['tol'], 2)}"))
        warn = None if converged is not False else (
            f"sam rho={v['rho']:g}: the ascent stopped at the cap of {v['num_steps']} steps "
            "(--sam_max_steps) before its gain per step fell below --sam_tol")
        yield ("sam", f"SAM sharpness rho={v['rho']:g}", _g(v["sharpness"], 5), converged,
               detail), warn


def _noise(m: dict, settings: dict):
    n, big_n = m["num_examples"], m.get("population_size")
    of = f" of N={big_n}" if big_n else ""
    yield ("noise_scale", "B_simple (raw)", _g(m["b_simple"], 5), None, f"n={n}{of}"), None
    small = bool(m.get("small_sample"))
    warn = None if not small else (
        f"noise_scale: n={n} examples is not >> B_simple (raw {_g(m['b_simple'], 4)}, corrected "
        f"{_g(m.get('b_simple_unbiased'), 4)}): the raw B_simple is biased low; use "
        "b_simple_unbiased, or measure more examples (--num_examples=0: the whole split)")
    yield ("noise_scale", "B_simple (bias-corrected)", _g(m.get("b_simple_unbiased"), 5),
           not small, "E|G_n|^2 = |G|^2 + (1 - n/N) tr(Sigma) / n removed"), warn
    if m.get("b_noise") is not None:
        yield ("noise_scale", "B_noise (raw / corrected)",
               f"{_g(m['b_noise'], 5)} / {_g(m.get('b_noise_unbiased'), 5)}", not small,
               f"{m.get('b_noise_method')}, tr(H Sigma) stderr "
               f"{_g(m.get('trace_hess_cov_stderr'), 2)}"), None


_ROWS = {"top_eigs": _top_eigs, "trace": _trace, "density": _density, "eps_sharpness": _eps,
         "sam": _sam, "noise_scale": _noise}


def summarize(record: dict) -> tuple[list[tuple], list[str], dict]:
    """(rows (metric, quantity, value, converged True/False/None, detail), warnings,
    converged per metric (False if any of its values did not converge; None: no test))."""
    rows, warnings, converged = [], [], {}
    for name, metric in record.get("metrics", {}).items():
        flags = []
        for row, warn in _ROWS[name](metric, record.get("settings", {})):
            rows.append(row)
            flags.append(row[3])
            if warn:
                warnings.append(warn)
        tested = [f for f in flags if f is not None]
        converged[name] = all(tested) if tested else None
    return rows, warnings, converged


def format_table(rows: list[tuple]) -> str:
    """A plain-text table of the rows (quantity, value, converged, detail)."""
    mark = {True: "yes", False: "NO", None: "-"}
    header = ("quantity", "value", "converged", "how")
    cells = [header] + [(q, v, mark[c], d) for _, q, v, c, d in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(3)]
    lines = ["  ".join(str(r[i]).ljust(widths[i]) for i in range(3)) + "  " + str(r[3])
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(header[3]))
    return "\n".join(lines)

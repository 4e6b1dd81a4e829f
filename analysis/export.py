"""Copy a sweep's small files (what the table and the figures read) out of its run directories.

    python -m analysis.export --root=runs/study_fig8 --out=results/embedded/study_fig8 [--overwrite]

Copies, keeping the layout under the root: every run's `config.json`, `summary.json`,
`eval.jsonl`, `metrics.jsonl`, the `analysis/*.json` results of `analysis.curvature` and
`analysis.interpolate`, and the sweep's `sweep.json`. Never copies checkpoints, TensorBoard
events, logs or plots. A file already at the destination with the same bytes is left alone; one
with different bytes is an error naming it (exit 2, nothing copied) unless `--overwrite`.
Prints how many files and bytes were copied.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys

from analysis.figures import cli

PROG = "analysis.export"
RUN_FILES = ("config.json", "summary.json", "eval.jsonl", "metrics.jsonl")
SKIPPED_DIRS = ("checkpoints", "tensorboard", "logs")


def small_files(root: str) -> list[str]:
    """Paths relative to root of the files to copy, sorted."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS)
        rel = os.path.relpath(directory, root)
        in_analysis = os.path.basename(directory) == "analysis"
        for name in sorted(files):
            wanted = (name in RUN_FILES and "config.json" in files) \
                or (in_analysis and name.endswith(".json")) \
                or (rel == "." and name == "sweep.json")
            if wanted:
                found.append(os.path.normpath(os.path.join(rel, name)))
    return found


def export(root: str, out: str, overwrite: bool = False) -> tuple[int, int]:
    """(files copied, bytes copied). ValueError before copying anything on a conflict."""
    if not os.path.isdir(root):
        raise ValueError(f"--root {root} is not a directory")
    if os.path.abspath(root) == os.path.abspath(out):
        raise ValueError(f"--out {out} is the root itself")
    files = small_files(root)
    if not files:
        raise ValueError(f"no run directory (a directory with config.json) under {root}")
    todo, conflicts = [], []
    for rel in files:
        source, target = os.path.join(root, rel), os.path.join(out, rel)
        if os.path.exists(target) and filecmp.cmp(source, target, shallow=False):
            continue
        if os.path.exists(target) and not overwrite:
            conflicts.append(target)
        todo.append(rel)
    if conflicts:
        raise ValueError(f"{len(conflicts)} file(s) already in {out} differ from the root's "
                         f"(first: {conflicts[0]}); pass --overwrite to replace them")
    copied = 0
    for rel in todo:
        target = os.path.join(out, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(root, rel), target)
        copied += os.path.getsize(target)
    return len(todo), copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=cli.description(__doc__))
    parser.add_argument("--root", required=True, help="a sweep directory (run directories)")
    parser.add_argument("--out", required=True, help="where the small files go")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace destination files whose bytes differ")
    args = parser.parse_args(argv)
    try:
        count, size = export(args.root, args.out, args.overwrite)
    except ValueError as err:
        return cli.fail(PROG, err)
    print(f"copied {count} file(s), {size / 1e6:.2f} MB, from {args.root} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

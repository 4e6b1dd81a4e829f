#!/usr/bin/env bash
# The offline batch-size study, end to end: three sweeps, curvature and interpolation on the
# fixed-lr runs, then the small files copied into results/embedded/ and every figure redrawn.
# Resumable: rerun after an interruption and finished trials / measured runs are skipped.
#   bash results/embedded/run_study.sh [RUNS_DIR]      # default RUNS_DIR=runs (~1.3 h on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-runs}
out=results/embedded
python=${PYTHON:-python}

for part in study_fig8 study_steps_to_target study_noise study_converged; do
  "$python" -m launch.sweep --sweep="configs/sweeps/$part.py" --root="$runs/$part" --parallel=2
done

# Sharpness of the fixed-lr (lr 0.05 at every B) solutions, all seeds, BN in eval mode.
for b in 16 32 64 128 256 512 1024 2048; do
  for s in 0 1 2; do
    run="$runs/study_fig8/bs$b-none-s$s"
    if ! compgen -G "$run/analysis/curvature_*.json" > /dev/null; then
      "$python" -m analysis.curvature --run="$run" --metrics=top_eigs,eps_sharpness,noise_scale \
        --num_examples=0 --bn_mode=eval --progress=0
    fi
  done
done
# The same on the large batches trained to convergence (study_converged.py).
for rule in none linear; do
  for s in 0 1 2; do
    run="$runs/study_converged/bs2048-ep500-$rule-s$s"
    if ! compgen -G "$run/analysis/curvature_*.json" > /dev/null; then
      "$python" -m analysis.curvature --run="$run" --metrics=top_eigs,eps_sharpness,noise_scale \
        --num_examples=0 --bn_mode=eval --progress=0
    fi
  done
done
if ! compgen -G "$runs/study_converged/bs2048-ep500-none-s0/analysis/interpolation_*.json" \
    > /dev/null; then
  "$python" -m analysis.interpolate --a="$runs/study_fig8/bs16-none-s0" \
    --b="$runs/study_converged/bs2048-ep500-none-s0" \
    --out="$runs/study_converged/bs2048-ep500-none-s0/analysis" --progress=0
fi
# Keskar's Fig. 3: the line from the B=16 solution to the B=2048 one.
if ! compgen -G "$runs/study_fig8/bs16-none-s0/analysis/interpolation_*.json" > /dev/null; then
  "$python" -m analysis.interpolate --a="$runs/study_fig8/bs16-none-s0" \
    --b="$runs/study_fig8/bs2048-none-s0" --progress=0
fi

# The small files only (no checkpoints, logs or TensorBoard events), then the table and figures.
for part in study_fig8 study_steps_to_target study_noise study_converged; do
  "$python" -m analysis.export --root="$runs/$part" --out="$out/$part" --overwrite
  "$python" -m analysis.collect --root="$out/$part" --out="$out/$part/runs.csv"
done
make figures PYTHON="$python"

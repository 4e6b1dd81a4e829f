#!/usr/bin/env bash
# The offline batch-size study, end to end: four sweeps, curvature and interpolation on the
# fixed-lr and the converged runs, then the small files copied into results/embedded/ and every figure redrawn.
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

# Curvature at a run's final checkpoint (top eigenvalue, eps-sharpness, exact B_simple; BN in
# eval mode, the whole train split), unless already measured to the end (a measurement cut short
# keeps its file, "complete": false, and a rerun measures again into a new one).
measured() {
  "$python" -c 'import glob, json, sys
sys.exit(0 if any(json.load(open(p)).get("complete") for p in glob.glob(sys.argv[1])) else 1)' \
    "$1/analysis/curvature_*.json" 2> /dev/null
}
curvature() {
  if ! measured "$1"; then
    "$python" -m analysis.curvature --run="$1" --metrics=top_eigs,eps_sharpness,noise_scale \
      --num_examples=0 --bn_mode=eval --progress=0
  fi
}
# Keskar's Fig. 3: the line from run $1 (alpha = 0) to run $2, written into $2's analysis/.
line() {
  if ! compgen -G "$2/analysis/interpolation_*.json" > /dev/null; then
    "$python" -m analysis.interpolate --a="$1" --b="$2" --out="$2/analysis" --progress=0
  fi
}
for s in 0 1 2; do
  for b in 16 32 64 128 256 512 1024 2048; do      # the fixed-lr (0.05 at every B) solutions
    curvature "$runs/study_fig8/bs$b-none-s$s"
  done
  for rule in none linear; do                       # B=2048 trained to convergence
    curvature "$runs/study_converged/bs2048-ep500-$rule-s$s"
  done
done
line "$runs/study_fig8/bs16-none-s0" "$runs/study_fig8/bs2048-none-s0"
line "$runs/study_fig8/bs16-none-s0" "$runs/study_converged/bs2048-ep500-none-s0"

# The small files only (no checkpoints, logs or TensorBoard events), then the table and figures.
for part in study_fig8 study_steps_to_target study_noise study_converged; do
  "$python" -m analysis.export --root="$runs/$part" --out="$out/$part" --overwrite
  "$python" -m analysis.collect --root="$out/$part" --out="$out/$part/runs.csv"
done
make figures PYTHON="$python"

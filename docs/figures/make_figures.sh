#!/bin/bash
# Every figure of docs/analysis.md, on the bundled digits data (CPU; 45 minutes on the shared 2-core
# development machine, 2026-11-29):
#   bash docs/figures/make_figures.sh [WORKDIR]
# Runs land under WORKDIR (default runs/docs-figures); the PNGs are copied to docs/figures/.
set -euo pipefail
FIGURES="$(cd "$(dirname "$0")" && pwd)"
WORK="${1:-runs/docs-figures}"
mkdir -p "$WORK" && cd "$WORK"
OUT=analysis

# Teacher (resnet20), student alone, KD and FiGKD students: the demo's schedule (9 epochs each on
# digits_16; the committed figures came from the earlier demo, 12 epochs on 32x32 digits).
figkd demo --out demo
RUNS="demo/teacher demo/kd demo/figkd"

figkd analyze hf-accuracy demo/teacher demo/student demo/kd demo/figkd --out "$OUT"
figkd analyze spectrum $RUNS --out "$OUT"
figkd analyze tsne demo/kd demo/figkd --out "$OUT"
figkd analyze predictions $RUNS --out "$OUT"
# Table 14's timing on this machine, with a pair a CPU times in a minute (cifar100 shapes: 10 x 10 grid, J <= 3).
figkd analyze overhead --teacher resnet20 --student resnet8 --dataset cifar100 --steps 10 --repeats 3 --out "$OUT"

# Fig. 4 on digits: Eq. 7 with alpha in {0.5, 1, 2, 4} at beta 2 and beta in {0.5, 1, 2, 4, 8} at alpha 1.
mkdir -p fig4/configs
for point in "0.5 2" "2 2" "4 2" "1 0.5" "1 1" "1 2" "1 4" "1 8"; do
  read -r alpha beta <<< "$point"
  cat > "fig4/configs/alpha$alpha-beta$beta.yaml" <<EOF
dataset: digits
teacher: resnet20
teacher_ckpt: demo/teacher
student: resnet8
epochs: 6
lr_milestones: [4, 5]
objective: [{term: ce, weight: $alpha}, {term: figkd, weight: $beta}]
out: fig4/alpha$alpha-beta$beta-s0
EOF
done
figkd sweep fig4/configs --jobs 2
figkd report fig4
figkd analyze sensitivity fig4 --teacher resnet20 --student resnet8 --out "$OUT"

cp "$OUT"/*.png "$FIGURES"/
echo "figures copied to $FIGURES"

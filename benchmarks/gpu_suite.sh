#!/usr/bin/env bash
# Every GPU measurement the issues ask for, in one command on a GPU machine (estimated, never measured,
# at about 15 minutes on an H100: more than one 10-minute command of a lent machine, where
# gpu_first_contact.sh comes first; docs/performance.md says where the figures go):
#
#   issue #2  loss_overhead.py      cost of each loss on CUDA (forward + backward, 64 x C logits)
#   issue #4  input_pipeline.py     images/s of the resident and JPEG loaders on CUDA
#   issue #6  throughput.py         ms/step and s/epoch of resnet32x4 -> resnet8x4, KD and FiGKD, every mode;
#                                   3 students on one teacher vs 3 runs
#             equivalence.py        fp32 eager vs the fast path on digits, 3 seeds
#             profile_step.py       what limits the captured step (GPU busy share, kernels per step)
#             pytest                the CUDA-only tests (graph capture vs eager, wavelets on CUDA)
#   issue #13 figkd analyze overhead Table 14: s/batch of KD and FiGKD J = 1, 2, 3, resnet32x4 -> resnet8x4, batch 64
#   issue #11 feature_overhead.py   ms per objective call and per step of KD and the eleven feature methods,
#                                   resnet32x4 -> resnet8x4, batch 64, CIFAR-100 sizes
#
# Usage, from the repository root:  bash benchmarks/gpu_suite.sh [OUTPUT_DIR]   (default benchmarks/results)
# Each step's output is also appended to OUTPUT_DIR/gpu_suite.log. A failing step is reported and the
# suite goes on, so one failure does not cost the other measurements; the exit status is the number of
# failed steps.
set -uo pipefail
out=${1:-benchmarks/results}
mkdir -p "$out"
log="$out/gpu_suite.log"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failed=0

step() {  # step NAME COMMAND...
  local name=$1; shift
  echo "=== $name: $* ($(date -u +%FT%TZ))" | tee -a "$log"
  local start=$SECONDS
  if "$@" 2>&1 | tee -a "$log"; then
    echo "=== $name: ok in $((SECONDS - start)) s" | tee -a "$log"
  else
    echo "=== $name: FAILED after $((SECONDS - start)) s" | tee -a "$log"
    failed=$((failed + 1))
  fi
}

python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$log"
step tests python -m pytest -q -rs tests/test_engine_graph.py tests/test_wavelets.py -k "cuda or gpu"
step loss_overhead python benchmarks/loss_overhead.py --device cuda --out "$out/loss_overhead_cuda.json"
step input_pipeline python benchmarks/input_pipeline.py --device cuda --out "$out/input_pipeline_cuda.json"
step throughput python benchmarks/throughput.py --teacher resnet32x4 --student resnet8x4 \
  --objectives kd figkd --modes fp32 bf16_cl compile graph --steps 200 --repeats 3 --eval-samples 10000 \
  --out "$out/throughput_cuda.json"
step shared_teacher python benchmarks/throughput.py --teacher resnet32x4 --student resnet8x4 \
  --objectives kd dkd figkd --shared --modes graph --steps 200 --repeats 3 --eval-samples 2048 \
  --out "$out/throughput_shared_cuda.json"
step equivalence python benchmarks/equivalence.py --out "$out/equivalence_cuda.json"
step profile python benchmarks/profile_step.py --mode graph --objectives figkd --steps 100 \
  --out "$out/profile_cuda_graph.json"
step profile_eager python benchmarks/profile_step.py --mode bf16_cl --objectives figkd --steps 100 \
  --out "$out/profile_cuda_bf16_cl.json"
step overhead python -m figkd analyze overhead --device cuda --steps 100 --repeats 5 --out "$out/overhead_cuda"
step feature_overhead python benchmarks/feature_overhead.py --device cuda \
  --objectives kd fitnet at pkt rkd sp vid crd ofd reviewkd cat_kd diffkd --out "$out/feature_overhead_cuda.json"
echo "=== $failed step(s) failed" | tee -a "$log"
exit "$failed"

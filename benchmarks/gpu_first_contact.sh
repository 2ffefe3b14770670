#!/usr/bin/env bash
# GPU first contact (issue #26): the smoke runs of `figkd distill` in every mode, the CUDA-only tests,
# throughput, FiGKD's overhead and the profile of the captured step, ordered by value, within a time
# budget (default 420 s), everything written to one output folder (7 files, no subfolder: summary.json,
# rewritten as each step starts and ends, log.txt, throughput_graph.json, throughput_eager.json,
# overhead.json, overhead.png, profile_graph.json). benchmarks/gpu_first_contact.py says what each step
# does; docs/performance.md ("GPU first contact") gives the exact command for the GPU machine.
#
#   bash benchmarks/gpu_first_contact.sh OUT [--budget S] [--only STEP ...] [--device D] [--tiny]
#
# OUT defaults to $OUT. The exit status is the number of steps that failed or ran out of time.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec python3 "$root/benchmarks/gpu_first_contact.py" "$@"

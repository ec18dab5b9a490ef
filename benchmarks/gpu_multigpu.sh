#!/usr/bin/env bash
# Multi-GPU scaling on the GPU machine (device tool, a kind with >= 2 GPUs): installs the carried wheels and GL
# libraries, runs benchmarks/bench_multigpu.py (1 vs N GPUs, rank-0-only writing, N->1 and N->N resume) and puts
# its log, the per-run logs and the new benchmark rows (new_rows.jsonl) into $OUT.
#   bash benchmarks/gpu_multigpu.sh [GPUS...]        (default: 1 2)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source benchmarks/gpu_env.sh
rows_before=$(python3 benchmarks/write_benchmarks_md.py --count 2>/dev/null || echo 0)
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
nvidia-smi topo -m > "$OUT/topo.txt" 2>&1
GPUS=${*:-1 2}
timeout 570 python3 benchmarks/bench_multigpu.py --gpus $GPUS --out runs/mgpu 2>&1 | tee "$OUT/multigpu.log"
python3 benchmarks/write_benchmarks_md.py --since "$rows_before" > "$OUT/new_rows.jsonl"
tar czf "$OUT/run_logs.tgz" runs/mgpu/*/*.log runs/mgpu/*/*gpu*/run.log runs/mgpu/*/*gpu*/metrics.jsonl 2>/dev/null
echo "new rows: $(wc -l < "$OUT/new_rows.jsonl")"

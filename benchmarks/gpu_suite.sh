#!/usr/bin/env bash
# Run on the GPU machine (device tool): installs carried wheels and OpenGL/EGL libraries, then runs the
# benchmark scripts, each under a time limit; logs and the new benchmark rows (new_rows.jsonl) go to $OUT.
#   bash benchmarks/gpu_suite.sh [NAME ...]    (default: all)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source benchmarks/gpu_env.sh
rows_before=$(python3 benchmarks/write_benchmarks_md.py --count 2>/dev/null || echo 0)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

run() {  # run NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date +%T))"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  tail -n 3 "$OUT/$name.log"; echo "--- $name rc=$rc"
}
want() { [ -z "${SELECTED// /}" ] || [[ "$SELECTED" == *" $1 "* ]]; }
SELECTED=" $* "
want render   && run render 120 python3 benchmarks/bench_render.py --resolutions 64 128 --batch 64 --repeats 5
want loader   && run loader 120 python3 benchmarks/bench_loader.py --images 8192 --batch 256 --steps 96 --workers 0 8 16
want synth    && run synth 240 python3 benchmarks/bench_synth.py --num-shapes 1000 --categories chair table --resolution 128 --workers 16
want iggan    && run iggan 150 python3 benchmarks/bench_iggan.py --preset paper --steps 5 --warmup 2
want triplane && run triplane 240 python3 benchmarks/bench_triplane.py --eg3d --batch 32 --steps 16 --warmup 4
want progressive && run progressive 150 python3 benchmarks/bench_progressive.py --device cuda
want metrics  && run metrics 90 python3 benchmarks/bench_metrics.py --device cuda
want tdgp     && run tdgp 150 python3 benchmarks/bench_tdgp.py --preset paper --batch-size 16 --steps 16 --warmup 4
want triplane_compile && run triplane_compile 300 python3 benchmarks/bench_triplane.py --eg3d --batch 32 --steps 16 --warmup 6 --compile
if want engine; then
  run engine_data 120 python3 -m unflat dataset synth --category chair --num-shapes 512 --resolution 64 --out /tmp/engine-data --overwrite
  run engine 240 python3 benchmarks/bench_engine.py --method mvtriplane --preset small --data /tmp/engine-data --steps 200 --checkpoint-every 100
fi
python3 benchmarks/write_benchmarks_md.py --since "$rows_before" > "$OUT/new_rows.jsonl" 2>/dev/null
echo "new rows: $(wc -l < "$OUT/new_rows.jsonl")"

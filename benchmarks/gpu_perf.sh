#!/usr/bin/env bash
# Tri-plane performance on the GPU machine, one device call (about 5 minutes on an H100):
#   sampling  - tri-plane sampling alone, fwd+bwd: grid_sample vs the fused Triton kernel (and their
#               numerical agreement on the GPU), launch configurations swept                       (~15 s)
#   variants  - training images/s + peak memory at EG3D-equivalent settings (batch 32), A/B of the
#               speed-ups in one process: eager, compile+fused (profiled right after its row: summary +
#               chrome trace), compile, compile+fused+ckpt, eager+fused                           (~4 min)
#   mesh      - mesh extraction at 256^3: density query, marching cubes (torch on GPU, skimage), colours
#   maxbatch  - largest batch that fits (EG3D-equivalent, eager, fused sampling), steps of 16
#   presets   - (not in the default list) largest batch at the `small` and `paper` presets (eager, fused sampling),
#               and at `paper` with gradient checkpointing too
#   interp    - (not in the default list) the compiled upsampling A/B (compile+fused vs compile+fused+interp) at
#               the `small` preset, where compiling takes a minute rather than the EG3D sizes' three
#   profile   - (not in the default list) a separate profile_triplane.py run of compile+fused
#   ckpt      - (not in the default list) eager+fused vs eager+fused+ckpt: what gradient checkpointing saves
#   iggan     - (not in the default list) iggan paper-preset step split, moderngl, with the draw's own parts
#   synth     - (not in the default list) `unflat dataset synth` of 10,000 shapes x 1 view at 128^2 (5 categories
#               x 2,000, 16 workers), timed end to end, then opened with hash verification
# Each part runs under its own time limit, so one failure does not lose the others. $OUT receives:
# logs.tar.gz (every part's log), new_rows.jsonl (the benchmark rows this run added: `python3 benchmarks/write_benchmarks_md.py --append` adds them to the history), profile/
# (profile_summary.txt + .json, trace.json.gz).
#   bash benchmarks/gpu_perf.sh [PART ...]          (default: sampling variants mesh maxbatch)
#   SMOKE=1 bash benchmarks/gpu_perf.sh             (CPU, tiny sizes, nothing appended to BENCHMARKS.md;
#                                                    the fused kernel runs in Triton's interpreter)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LOGS=$(mktemp -d); trap 'rm -rf "$LOGS"' EXIT
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TRITON_INTERPRET=1
  SIZE=(--preset tiny --device cpu --no-write); STEPS=(--steps 2 --warmup 1)
  VARIANTS=eager,eager+fused,eager+fused+ckpt; PROFILED=eager+fused; LIMIT_SCALE=3
  SAMPLING=(--device cpu --no-write --batch 1 --resolution 16 --points 500 --repeats 1)
  MESH=(--preset tiny --device cpu --no-write --resolution 32 --repeats 1)
  MAXBATCH=(--max-batch-limit 8); PRESETS=(tiny); PRESET_MAXBATCH=(--device cpu --no-write --max-batch-limit 8)
  INTERP=(--preset tiny --device cpu --no-write --steps 2 --warmup 1 --variants eager+fused,eager+fused+interp)
else
  source benchmarks/gpu_env.sh
  SIZE=(--eg3d --samples 64 64 --batch 32); STEPS=(--steps 16 --warmup 3)
  VARIANTS=compile+fused,compile+fused+interp,eager,eager+fused,compile+fused+ckpt; PROFILED=compile+fused; LIMIT_SCALE=1
  SAMPLING=(--repeats 10); MESH=(--eg3d --resolution 256 --repeats 3); MAXBATCH=(--max-batch-unit 16 --max-batch-seconds 70)
  PRESETS=(small paper); PRESET_MAXBATCH=(--max-batch-unit 16 --max-batch-seconds 60)
  INTERP=(--preset small --steps 24 --warmup 3 --variants compile+fused,compile+fused+interp)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$LOGS/gpu.txt"
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$LOGS/gpu.txt"
fi
rows_before=$(python3 benchmarks/write_benchmarks_md.py --count 2>/dev/null || echo 0)

run() {  # run NAME SECONDS COMMAND...
  local name=$1 limit=$(($2 * LIMIT_SCALE)); shift 2
  echo "=== $name ($(date +%T), limit ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1; local rc=$?
  grep -E '^\{"(what|variant)"' "$LOGS/$name.log" | python3 -c "import json,sys; [print('  ', r.get('variant') or '', '|', r.get('figure') or r.get('error')) for r in map(json.loads, sys.stdin)]"
  [ $rc -ne 0 ] && tail -n 15 "$LOGS/$name.log"
  echo "--- $name rc=$rc $((SECONDS - start))s"
}
SELECTED=" ${*:-sampling variants mesh maxbatch} "
want() { [[ "$SELECTED" == *" $1 "* ]]; }

want sampling && run sampling 45 python3 benchmarks/bench_triplane_sampling.py "${SAMPLING[@]}"
want variants && run variants 300 python3 benchmarks/bench_triplane.py "${SIZE[@]}" "${STEPS[@]}" --variants "$VARIANTS" \
  --profile-variant "$PROFILED" --profile-out "$OUT/profile"
want profile && run profile 150 python3 benchmarks/profile_triplane.py "${SIZE[@]}" --variant "$PROFILED" --steps 4 --warmup 3 --out "$OUT/profile"
[ -f "$OUT/profile/profile_summary.txt" ] && sed -n '1,45p' "$OUT/profile/profile_summary.txt"
if want ckpt; then
  if [ "$SMOKE" = 1 ]; then CKPT_VARIANTS=eager,eager+ckpt; else CKPT_VARIANTS=eager+fused,eager+fused+ckpt; fi
  run ckpt 120 python3 benchmarks/bench_triplane.py "${SIZE[@]}" "${STEPS[@]}" --variants "$CKPT_VARIANTS"
fi
if want iggan; then
  if [ "$SMOKE" = 1 ]; then IGGAN=(--preset tiny --steps 2 --warmup 1 --no-write); else IGGAN=(--preset paper); fi
  run iggan 90 python3 benchmarks/bench_iggan.py "${IGGAN[@]}" --backends moderngl
fi
if want synth; then
  if [ "$SMOKE" = 1 ]; then SYNTH=(--num-shapes 4 --resolution 32 --workers 2 --no-write); else SYNTH=(--num-shapes 2000 --resolution 128 --workers 16); fi
  run synth 240 python3 benchmarks/bench_synth.py --categories chair table sofa mug car "${SYNTH[@]}" --verify
fi
want mesh && run mesh 75 python3 benchmarks/bench_mesh_extraction.py "${MESH[@]}"
if [ "$SMOKE" = 1 ]; then
  want maxbatch && run maxbatch 60 python3 benchmarks/bench_triplane.py "${SIZE[@]}" --fused-sampling --max-batch "${MAXBATCH[@]}"
else
  want maxbatch && run maxbatch 90 python3 benchmarks/bench_triplane.py --eg3d --fused-sampling --max-batch "${MAXBATCH[@]}"
fi
if want presets; then
  for preset in "${PRESETS[@]}"; do
    run "maxbatch_$preset" 75 python3 benchmarks/bench_triplane.py --preset "$preset" --fused-sampling --max-batch "${PRESET_MAXBATCH[@]}"
  done
  run "maxbatch_${PRESETS[-1]}_ckpt" 75 python3 benchmarks/bench_triplane.py --preset "${PRESETS[-1]}" --fused-sampling \
    --grad-checkpoint --max-batch "${PRESET_MAXBATCH[@]}"
fi
want interp && run interp 240 python3 benchmarks/bench_triplane.py "${INTERP[@]}"

python3 benchmarks/write_benchmarks_md.py --since "$rows_before" > "$OUT/new_rows.jsonl" 2>/dev/null
echo "new benchmark rows: $(wc -l < "$OUT/new_rows.jsonl")"
tar -czf "$OUT/logs.tar.gz" -C "$LOGS" .
ls -la "$OUT" "$OUT/profile" 2>/dev/null

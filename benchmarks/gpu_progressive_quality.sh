#!/usr/bin/env bash
# Issue #21's measurement in one device command (< 10 min on one H200): posed embedded data (6 categories x 150
# shapes x 4 views, 128^2, ground-truth cameras), `unflat train progressive --preset paper --batch-size 16` for
# TRAIN_S seconds of wall clock, then on 72 held-back shapes (12 per category, synth seed 1000): `unflat evaluate`
# (same-view IoU/PSNR, Chamfer, F-score; with and without the input's colours blended in), top-1 specificity
# (benchmarks/progressive_specificity.py) and the photos that scikit-image/scikit-learn/matplotlib ship,
# reconstructed without masks.
#   ARMS="after before"   after = today's defaults; before = --arch legacy --losses.w-input-texture 0 --losses.perceptual-features pyramid
#   PROG_FLAGS="..."      extra `unflat train progressive` flags for every arm
#   FLAGS_<arm>="..."     the flags of an arm of any other name, e.g. ARMS="legacy norm" FLAGS_legacy="--arch legacy"
#   PARALLEL=1            train (then evaluate) all arms at the same time on the one GPU: each arm gets TRAIN_S of
#                         wall clock while sharing it, so arms compare with each other, not with solo runs
#   BATCH=16              the batch size of every arm
#   SMOKE=1               the same steps at CPU sizes (2 categories, 32^2, tiny preset, 20 s)
# Results: $OUT/progressive-quality.json (one object per arm), $OUT/progressive-quality-files.tar (logs, photo
# reconstructions, sample renders). Run on the GPU machine with `.whl` and `.gl` carried.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SMOKE:-0}" = 1 ]; then
  SHAPES=${SHAPES:-3}; HELD=${HELD:-2}; VIEWS=2; RES=32; PRESET=tiny; TRAIN_S=${TRAIN_S:-20}; BATCH=4
  CATS=${CATS:-"car mug"}; DEVICE=cpu
else
  source benchmarks/gpu_env.sh
  SHAPES=${SHAPES:-150}; HELD=${HELD:-12}; VIEWS=4; RES=128; PRESET=paper; TRAIN_S=${TRAIN_S:-280}; BATCH=${BATCH:-16}
  CATS=${CATS:-"car chair lamp mug sofa table"}; DEVICE=cuda
fi
PY=${PY:-python3}
W=${WORK:-runs/progressive-quality}
OUT=${OUT:-$W/out}
mkdir -p "$OUT" "$W/logs"
# Whatever happens, the logs come back (a failed step stops the script: set -e).
trap 'tar -cf "$OUT/progressive-quality-logs.tar" -C "$W" logs 2>/dev/null || true; tail -n 20 "$W"/logs/*.log 2>/dev/null | tail -n 60' EXIT
ncat=$(wc -w <<< "$CATS"); held_total=$((ncat * HELD))
unflat() { "$PY" -m unflat "$@"; }

t0=$(date +%s)
[ -e "$W/data/posed/manifest.json" ] || unflat dataset synth --category $CATS --num-shapes "$SHAPES" \
  --views-per-shape "$VIEWS" --resolution "$RES" --out "$W/data/posed" > "$W/logs/synth.log" 2>&1
[ -e "$W/data/held/manifest.json" ] || unflat dataset synth --category $CATS --num-shapes "$HELD" \
  --views-per-shape "$VIEWS" --resolution "$RES" --seed 1000 --out "$W/data/held" >> "$W/logs/synth.log" 2>&1
[ -d "$W/data/photos" ] || "$PY" benchmarks/write_sample_photos.py "$W/data/photos" > "$W/logs/photos.log" 2>&1 || true
echo "data ready in $(( $(date +%s) - t0 )) s"

arm_flags() {  # the flags of arm $1
  case $1 in
    after) echo "" ;;
    before) echo "--arch legacy --losses.w-input-texture 0 --losses.perceptual-features pyramid" ;;
    *) local v="FLAGS_$1"; [ -n "${!v+x}" ] || { echo "arm $1: set FLAGS_$1" >&2; exit 2; }; echo "${!v}" ;;
  esac
}
train_arm() {  # train_arm NAME: TRAIN_S of wall clock, then SIGINT (the trainer checkpoints and exits)
  local arm=$1 flags; flags=$(arm_flags "$arm")
  local run="$W/runs/$arm" start; rm -rf "$run"; start=$(date +%s)
  timeout -s INT "$TRAIN_S" "$PY" -m unflat train progressive --data "$W/data/posed" --preset "$PRESET" \
    --batch-size "$BATCH" --rendering.rasterizer torch --max-steps 1000000 --checkpoint-every 500 --sample-every 0 \
    --device "$DEVICE" $flags ${PROG_FLAGS:-} --out "$run" > "$W/logs/train-$arm.log" 2>&1 || true
  echo $(( $(date +%s) - start )) > "$W/logs/train-$arm.seconds"
  tail -n 3 "$W/logs/train-$arm.log"
}
evaluate_arm() {  # evaluate_arm NAME: held-back metrics, with input colours, specificity, photos
  local arm=$1 run="$W/runs/$1"
  unflat evaluate "$run" --data "$W/data/held" --num-shapes "$held_total" --seed 1000 --device "$DEVICE" --no-report \
    --out "$W/eval-$arm.json" > "$W/logs/eval-$arm.log" 2>&1 || echo "evaluate ($arm) failed: logs/eval-$arm.log"
  unflat evaluate "$run" --data "$W/data/held" --num-shapes "$held_total" --seed 1000 --device "$DEVICE" --no-report \
    --input-colours 1 --out "$W/eval-colours-$arm.json" >> "$W/logs/eval-$arm.log" 2>&1 || echo "evaluate --input-colours ($arm) failed"
  "$PY" benchmarks/progressive_specificity.py "$run" --data "$W/data/held" --num-shapes "$held_total" \
    --seed 1000 --device "$DEVICE" --out "$W/specificity-$arm.json" > "$W/logs/specificity-$arm.log" 2>&1 || echo "specificity ($arm) failed"
  if [ -d "$W/data/photos" ]; then
    unflat reconstruct "$run" "$W/data/photos" --out "$W/photos-$arm" --device "$DEVICE" > "$W/logs/photos-$arm.log" 2>&1 || true
  fi
}
ARM_LIST=(${ARMS:-after})
for arm in "${ARM_LIST[@]}"; do arm_flags "$arm" > /dev/null; done  # an unknown arm stops here, before any work
if [ "${PARALLEL:-0}" = 1 ]; then
  for arm in "${ARM_LIST[@]}"; do train_arm "$arm" & done; wait
  for arm in "${ARM_LIST[@]}"; do evaluate_arm "$arm" & done; wait
else
  for arm in "${ARM_LIST[@]}"; do train_arm "$arm"; evaluate_arm "$arm"; done
fi
results=()
for arm in "${ARM_LIST[@]}"; do results+=("$arm" "$(cat "$W/logs/train-$arm.seconds")" "$(arm_flags "$arm") ${PROG_FLAGS:-}"); done

"$PY" - "$OUT/progressive-quality.json" "$W" "$TRAIN_S" "$PRESET" "$RES" "${results[@]}" <<'EOF'
import json, os, subprocess, sys, time
from pathlib import Path
out, work, budget, preset, res, *rest = sys.argv[1:]
work = Path(work)
arms = {}
for name, seconds, flags in zip(rest[0::3], rest[1::3], rest[2::3]):
    def load(p):
        p = work / p
        return json.loads(p.read_text()) if p.exists() else None
    evaluated = load(f"eval-{name}.json") or {}
    arms[name] = {"flags": flags, "train_wall_s": int(seconds), "steps": (evaluated.get("run") or {}).get("step"),
                  "evaluate": load(f"eval-{name}.json"), "evaluate_input_colours": load(f"eval-colours-{name}.json"),
                  "specificity": load(f"specificity-{name}.json")}
try:
    import torch
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
except Exception:  # noqa: BLE001
    device = "unknown"
git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
summary = {"benchmark": "progressive_quality", "date": time.strftime("%Y-%m-%d"), "device": device, "git": git,
           "recipe": {"train": "6 categories x 150 shapes x 4 views, 128^2, posed", "held_back": "12 shapes per category, synth seed 1000",
                      "preset": preset, "resolution": int(res), "train_budget_s": int(budget)},
           "command": "bash benchmarks/gpu_progressive_quality.sh", "parallel": os.environ.get("PARALLEL") == "1",
           "env": {k: v for k, v in sorted(os.environ.items()) if k in ("ARMS", "PROG_FLAGS", "TRAIN_S", "PARALLEL", "BATCH") or k.startswith("FLAGS_")},
           "arms": arms}
Path(out).write_text(json.dumps(summary, indent=1))
def headline(ev):
    same = (ev or {}).get("same_view") or {}
    mean = lambda *keys: (lambda v: None if v is None else round(v, 4))(
        __import__("functools").reduce(lambda d, k: (d or {}).get(k), keys, same))
    return {"iou": mean("silhouette_iou", "mean"), "psnr": mean("psnr", "mean"), "chamfer_l2": mean("chamfer", "mean"),
            "fscore_0.05": mean("fscore", "0.05", "mean")}
for name, arm in arms.items():
    arm["headline"] = headline(arm["evaluate"])
    arm["headline_input_colours"] = headline(arm["evaluate_input_colours"])
    arm["headline"]["top1_specificity"] = (arm["specificity"] or {}).get("top1_specificity")
    print(name, "steps", arm["steps"], json.dumps(arm["headline"]), "with input colours:", json.dumps(arm["headline_input_colours"]))
Path(out).write_text(json.dumps(summary, indent=1))
EOF
tar -cf "$OUT/progressive-quality-files.tar" -C "$W" logs $(cd "$W" && ls -d eval-*.json specificity-*.json photos-* 2>/dev/null)
echo "total $(( $(date +%s) - t0 )) s"

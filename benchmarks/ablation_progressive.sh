#!/usr/bin/env bash
# progressive (Dundar et al.): the full chain on embedded data, the paper's ablations at equal budget, and
# reconstruction latency against PTI inversion.
#
#   bash benchmarks/ablation_progressive.sh arms                    # the arms, one line
#   bash benchmarks/ablation_progressive.sh prepare                 # <= 150 s: data, 3D generator, datasets, backbone
#   bash benchmarks/ablation_progressive.sh full|nostages|sameview|nomvd|latency   # each <= 330 s, in parallel
#   bash benchmarks/ablation_progressive.sh report                  # markdown tables on stdout
#   SMOKE=1 bash benchmarks/ablation_progressive.sh all             # the whole thing at tiny sizes on CPU
#
# prepare: `unflat dataset synth` chairs (64 px) -> a short mvtriplane run (the widened small preset of
# docs/lab/results-h100.md, stopped by SIGINT after GEN_SECONDS) -> `unflat dataset from-generator` (posed
# multi-view images + masks + depth of the generator's samples: the training data of every arm) -> a
# held-back posed set of unseen synth chairs with ground-truth meshes (`unflat dataset synth --views-per-shape`,
# another seed: what every arm is evaluated on) -> the domain backbone (FID/KID, perceptual distance).
# Arms (each arm's config fields: benchmarks/arms/progressive/ARM.yaml, passed with --config) (same data, preset, batch, seed and STEPS; only the paper's switch differs):
#   full      three stages (II at 40%, III at 70% of STEPS, the paper preset's proportions), multi-view disc.
#   nostages  every loss from step 0 (--schedule.stage2-start 0 --schedule.stage3-start 0): "No Multi-Stage"
#   sameview  --schedule.supervision same-view with stage I losses only (the paper's Eq. 7-9): "Same-View Training"
#   nomvd     as full with --discriminator.no-conditional: "No Multi-View disc."
#   latency   bench_progressive.py: network and image->GLB at batch 1 and 64, PTI of one image, the ratio
# Each arm: runs/abl/progressive/<arm>/summary.json (metrics, steps reached, wall seconds, exact commands).
set -uo pipefail
source benchmarks/ablation_lib.sh  # SMOKE, ABL_PHASE, PY, log, run, arm_dir, trained_seconds
M=progressive
D=${ABL_DIR:-runs/abl/$M}
mkdir -p "$D"
ARMS="full nostages sameview nomvd latency"

if [ "$SMOKE" = 1 ]; then   # tiny sizes on CPU: proves the script end to end, numbers mean nothing
  DEV=cpu; RES=16; GAN_SHAPES=12; HELD_SHAPES=6; HELD_VIEWS=2; GEN_SHAPES=8; GEN_VIEWS=2; WORKERS=2
  GEN_ARGS=(--preset tiny --rendering.output-resolution 16 --rendering.neural-resolution 8 --max-steps 3 --checkpoint-every 3
            --sample-every 0 --log-every 1 --no-tensorboard)
  GEN_SECONDS=120; GEN_FILTER=(--min-mask-fraction 0 --max-mask-fraction 1)
  BB_ARGS=(--preset tiny --max-steps 3 --batch-size 8); BB_SECONDS=60
  STEPS=${STEPS:-6}; REC_ARGS=(--preset tiny --batch-size 2); TRAIN_SECONDS=120; EVAL_SECONDS=120
  EVAL_SHAPES=4; EVAL_POINTS=500
  LAT_ARGS=(--recon-batches 1 4 --recon-resolution 32 --repeats 1 --pti-steps-w 2 --pti-steps-g 2 --no-write)
else
  DEV=cuda; RES=64; GAN_SHAPES=${GAN_SHAPES:-400}; HELD_SHAPES=128; HELD_VIEWS=4; GEN_SHAPES=600; GEN_VIEWS=4; WORKERS=4
  GEN_ARGS=(--rendering.output-resolution 64 --rendering.neural-resolution 32 --generator.plane-resolution 64 --generator.plane-channels 32 --generator.channel-max 256
            --discriminator.channel-max 256 --batch-size 32 --rendering.num-coarse 32 --rendering.num-fine 32 --max-steps 100000 --log-every 50
            --sample-every 100000 --checkpoint-every 200 --multiview.start-step -1 --multiview.no-auto --multiview.diversity-every 0)
  GEN_SECONDS=${GEN_SECONDS:-80}; GEN_FILTER=()
  BB_ARGS=(--preset small --max-steps 1500 --batch-size 128); BB_SECONDS=${BB_SECONDS:-70}
  # 1,000 steps of 16 shapes (32 images): at an assumed 0.1-0.2 s/step with 6 jobs per GPU this ends well
  # inside TRAIN_SECONDS; the step reached is recorded, and `report` flags an arm that stopped early.
  STEPS=${STEPS:-1000}; REC_ARGS=(--preset small --batch-size 16); TRAIN_SECONDS=${TRAIN_SECONDS:-230}; EVAL_SECONDS=85
  EVAL_SHAPES=128; EVAL_POINTS=10000
  LAT_ARGS=(--recon-batches 1 64 --repeats 5)
fi
ARM_SECONDS=${ARM_SECONDS:-325}  # the convention's hard budget per arm (train + evaluate)
S2=$((STEPS * 4 / 10)); S3=$((STEPS * 7 / 10)); CKPT=$((STEPS / 10 > 0 ? STEPS / 10 : 1))
# Losses use the weight-free `pyramid` features (no AlexNet/VGG weights on the GPU machine, and training on the
# domain backbone would optimise the very features the evaluation measures with); the portable rasteriser, so no
# arm builds nvdiffrast while the others train.
REC_COMMON=(--data "$D/gen-data" --max-steps "$STEPS" --seed 0 --device "$DEV" --rendering.rasterizer torch
            --losses.perceptual-features pyramid --log-every 50 --sample-every "$STEPS" --checkpoint-every "$CKPT"
            --keep-checkpoints 0 --no-tensorboard)

step_of() {  # the step a run's latest checkpoint reached (empty when there is none)
  $PY -c "import sys; from unflat.engine.checkpoint import load_checkpoint; print(load_checkpoint(sys.argv[1])['step'])" "$1" 2>/dev/null
}

prepare() {
  CMDS=$D/prepare.commands; : > "$CMDS"; local t0=$SECONDS
  run $PY -m unflat dataset synth --category chair --num-shapes $GAN_SHAPES --resolution $RES --seed 0 \
      --workers $WORKERS --no-with-depth --out "$D/gan-data" --overwrite
  # the generator trains while the held-back set renders and the backbone trains (one GPU, shared)
  ( run timeout -s INT $GEN_SECONDS $PY -m unflat train mvtriplane --data "$D/gan-data" --out "$D/gen" \
        --device $DEV --seed 0 "${GEN_ARGS[@]}" > "$D/gen.log" 2>&1 ) &
  local gen_pid=$!
  run $PY -m unflat dataset synth --category chair --num-shapes $HELD_SHAPES --views-per-shape $HELD_VIEWS \
      --resolution $RES --seed 1000 --elevation-range -10 40 --workers $WORKERS --out "$D/heldout" --overwrite
  run timeout -s INT $BB_SECONDS $PY -m unflat train backbone --data "$D/gan-data" --out "$D/backbone-run" \
      --device $DEV --no-install-to-data "${BB_ARGS[@]}" > "$D/backbone.log" 2>&1
  if [ -f "$D/backbone-run/backbone.safetensors" ]; then
    cp "$D/backbone-run/backbone.safetensors" "$D/backbone-run/backbone.json" "$D/"
  else  # stopped by the timeout before its end-of-training hook: write the file from the last checkpoint
    run $PY -m unflat export "$D/backbone-run" --out "$D" --device $DEV
  fi
  wait $gen_pid
  log "generator reached step $(step_of "$D/gen")"
  run $PY -m unflat dataset from-generator "$D/gen" --num-shapes $GEN_SHAPES --views-per-shape $GEN_VIEWS \
      --elevation-range -10 40 --batch-shapes 32 --seed 0 --device $DEV "${GEN_FILTER[@]}" --out "$D/gen-data" --overwrite \
    || run $PY -m unflat dataset from-generator "$D/gen" --num-shapes $GEN_SHAPES --views-per-shape $GEN_VIEWS \
      --elevation-range -10 40 --batch-shapes 32 --seed 0 --device $DEV --min-mask-fraction 0 --max-mask-fraction 1 \
      --out "$D/gen-data" --overwrite   # an early generator may fail the quality filter everywhere
  $PY - "$D/gen-data" "$D/gen-data-preview.png" <<'EOF' || true
import sys
import numpy as np
from PIL import Image
from unflat.data.format import open_dataset
data = open_dataset(sys.argv[1])
groups = list(data.views_of_shape())[:8]  # rows: shapes, columns: their views
rows = [np.concatenate([np.asarray(data.images[i]) for i in g], 1) for g in groups]
Image.fromarray(np.concatenate(rows, 0)).save(sys.argv[2])
print(f"{sys.argv[1]}: {len(data)} images of {data.info.num_shapes} shapes; preview {sys.argv[2]}")
EOF
  log "prepare took $((SECONDS - t0)) s"
}

evaluate_into() {  # evaluate_into RUN_OR_CHECKPOINT OUT.json [--no-report]
  run timeout -s INT $EVAL_SECONDS $PY -m unflat evaluate "$1" --data "$D/heldout" --backbone "$D/backbone.safetensors" \
      --num-shapes $EVAL_SHAPES --num-points $EVAL_POINTS --device $DEV --out "$2" "${@:3}"
}

train_arm() {  # train_arm ARM EXTRA_FLAGS...
  local arm=$1; shift
  local A=$D/$arm; arm_dir "$A"
  local config; config=$(arm_config "$arm") || return 1
  local t0=$SECONDS arm_start=$SECONDS
  [ "$PHASE" = eval ] || run timeout -s INT $TRAIN_SECONDS $PY -m unflat train progressive --config "$config" "${REC_ARGS[@]}" "${REC_COMMON[@]}" "$@" \
      --out "$A/run" > "$A/train.log" 2>&1
  local train_s; train_s=$(trained_seconds "$A" $((SECONDS - t0))); t0=$SECONDS
  [ "$PHASE" = train ] && return 0
  evaluate_into "$A/run" "$A/metrics.json"
  local eval_s=$((SECONDS - t0))
  if [ "$arm" = full ]; then  # the paper's Table I: the same run at the end of stages I and II, while time is left
    for s in $S2 $S3; do
      local ck; ck=$(printf '%s/run/checkpoints/step-%08d.pt' "$A" "$s")
      if [ -f "$ck" ] && [ $((SECONDS - arm_start + EVAL_SECONDS)) -lt $ARM_SECONDS ]; then
        evaluate_into "$ck" "$A/metrics-step$s.json" --no-report
      fi
    done
  fi
  summarise "$arm" "$train_s" "$eval_s"
}

summarise() {  # summarise ARM TRAIN_S EVAL_S -> $D/ARM/summary.json
  $PY - "$D" "$1" "$2" "$3" "$STEPS" "$S2" "$S3" <<'EOF'
import json, sys
from pathlib import Path
root, arm, train_s, eval_s, steps, s2, s3 = sys.argv[1:]
A = Path(root) / arm
def reached(path):
    try:
        from unflat.engine.checkpoint import load_checkpoint
        return int(load_checkpoint(path)["step"])
    except Exception:
        return None
def means(view):
    if not view:
        return {}
    out = {k: view[k]["mean"] for k in ("mse", "psnr", "ssim", "lpips", "silhouette_iou", "depth_accuracy", "chamfer",
                                        "volume_iou") if isinstance(view.get(k), dict)}
    out.update({k: view[k] for k in ("fid", "kid", "perceptual_backbone", "fid_backbone", "fid_weights_hash") if view.get(k) is not None})
    out.update({f"fscore@{t}": v["mean"] for t, v in (view.get("fscore") or {}).items()})
    return out
def metrics(path):
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    return {"step": m["run"]["step"], "same_view": means(m.get("same_view")), "novel_view": means(m.get("novel_view")),
            "num_shapes": m["settings"].get("num_shapes"), "skipped": m.get("skipped"), "file": str(path)}
summary = {"method": "progressive", "arm": arm, "steps_target": int(steps), "steps_reached": reached(A / "run"),
           "stage2_start": int(s2), "stage3_start": int(s3), "train_wall_s": int(train_s), "eval_wall_s": int(eval_s),
           "metrics": metrics(A / "metrics.json"),
           "stages": {f"step{s}": metrics(A / f"metrics-step{s}.json") for s in (s2, s3) if (A / f"metrics-step{s}.json").is_file()},
           "commands": (A / "commands").read_text().splitlines()}
(A / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"{arm}: step {summary['steps_reached']}/{steps}, train {train_s} s, evaluate {eval_s} s -> {A / 'summary.json'}")
EOF
}

latency() {
  [ "$PHASE" = eval ] && return 0
  local A=$D/latency; rm -rf "$A"; mkdir -p "$A"; CMDS=$A/commands; : > "$CMDS"; local t0=$SECONDS
  # a 1-step run of the arms' network (latency does not depend on the weights) to reconstruct with
  run timeout -s INT 60 $PY -m unflat train progressive "${REC_ARGS[@]}" "${REC_COMMON[@]}" --max-steps 1 \
      --out "$A/run" > "$A/train.log" 2>&1
  run timeout -s INT 260 $PY benchmarks/bench_progressive.py --device $DEV --skip-rasteriser --run "$A/run" \
      --images "$D/heldout" --pti-run "$D/gen" --pti-backbone "$D/backbone.safetensors" "${LAT_ARGS[@]}" \
      --summary "$A/latency.json" > "$A/bench.log" 2>&1
  tail -n 5 "$A/bench.log"
  $PY - "$A" "$((SECONDS - t0))" <<'EOF'
import json, sys
from pathlib import Path
A, wall = Path(sys.argv[1]), int(sys.argv[2])
lat = A / "latency.json"
summary = {"method": "progressive", "arm": "latency", "wall_s": wall,
           "latency": json.loads(lat.read_text()) if lat.is_file() else None,
           "rows": [json.loads(l) for l in (A / "bench.log").read_text().splitlines() if l.startswith("{")]
                   if (A / "bench.log").is_file() else [],
           "commands": (A / "commands").read_text().splitlines()}
(A / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"latency: {wall} s -> {A / 'summary.json'}")
EOF
}

report() {
  $PY - "$D" $ARMS <<'EOF'
import json, sys
from pathlib import Path
root, arms = Path(sys.argv[1]), sys.argv[2:]
def f(v, digits=4):
    return "-" if v is None else (f"{v:.{digits}g}" if isinstance(v, float) else str(v))
def load(arm):
    p = root / arm / "summary.json"
    return json.loads(p.read_text()) if p.is_file() else None
def chain():  # what prepare made: the generator's step, the from-generator data, the backbone
    parts = []
    try:
        from unflat.engine.checkpoint import load_checkpoint
        parts.append(f"generator mvtriplane at step {load_checkpoint(root / 'gen')['step']}")
    except Exception as exc:
        parts.append(f"generator: {exc}")
    try:
        from unflat.data.format import open_dataset
        for name in ("gen-data", "heldout"):
            info = open_dataset(root / name).info
            parts.append(f"{name}: {info.num_shapes} shapes x {info.views_per_shape} views at {info.resolution}px")
    except Exception as exc:
        parts.append(f"data: {exc}")
    bb = root / "backbone.json"
    if bb.is_file():
        b = json.loads(bb.read_text())
        acc = b.get("held_out_accuracy") or {}
        parts.append(f"backbone {b['name']} (weights {b['weights_hash']}; held-out azimuth bin {f(acc.get('azimuth_accuracy'), 3)}, "
                     f"within one bin {f(acc.get('azimuth_within_one_bin'), 3)}, elevation bin {f(acc.get('elevation_accuracy'), 3)})")
    return "; ".join(parts)
names = {"full": "full (3 stages, multi-view D)", "nostages": "no multi-stage", "sameview": "same-view training",
         "nomvd": "no multi-view D"}
rows, shape_rows, note = [], [], None
for arm in [a for a in arms if a != "latency"]:
    s = load(arm)
    if s is None:
        rows.append(f"| {names.get(arm, arm)} | not run |" + " |" * 11); continue
    entries = [(names.get(arm, arm), s["metrics"])]
    stage_name = {f"step{s['stage2_start']}": "I", f"step{s['stage3_start']}": "II"}
    entries += [(f"{names.get(arm, arm)}, end of stage {stage_name.get(k, k)}", v)
                for k, v in sorted(s.get("stages", {}).items(), key=lambda kv: int(kv[0][4:]))]
    for label, m in entries:
        step = f"{m['step'] if m else s['steps_reached']}/{s['steps_target']}"
        if m is None:
            rows.append(f"| {label} | {step} | evaluation failed |" + " |" * 10); continue
        a, b = m["same_view"], m["novel_view"]
        note = note or a.get("perceptual_backbone")
        rows.append("| " + " | ".join([label, step] + [f(v.get(k)) for v in (a, b) for k in ("fid", "lpips", "mse", "ssim", "silhouette_iou")]) + " |")
        shape_rows.append("| " + " | ".join([label, step, f(a.get("chamfer")), f(a.get("fscore@0.02")), f(a.get("fscore@0.05")),
                                               f(a.get("volume_iou")), f(a.get("kid")), f(b.get("kid")),
                                               f(s["train_wall_s"], 3), f(s["eval_wall_s"], 3)]) + " |")
print("### progressive: the paper's ablations at equal budget (held-back unseen synth chairs)\n")
print(f"Chain: {chain()}.\n")
print("| arm | step | same FID | same LPIPS* | same MSE | same SSIM | same IoU | novel FID | novel LPIPS* | novel MSE | novel SSIM | novel IoU |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
print(f"\n*LPIPS column: {note or 'see metrics.json'}. FID/KID: renders vs their targets on the domain backbone.\n")
print("| arm | step | Chamfer-L2² | F@0.02 | F@0.05 | volume IoU | same KID | novel KID | train s | eval s |")
print("|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(shape_rows))
lat = load("latency")
if lat and lat.get("latency"):
    L = lat["latency"]
    print(f"\n### progressive: reconstruction latency vs PTI ({L.get('device')})\n")
    print("| what | batch | ms per batch | ms per image |\n|---|---|---|---|")
    for part, label in (("paper_network", "paper-size network, random weights"), ("network", "the arms' network")):
        net = L.get(part) or {}
        for key in sorted((k for k in net if k.endswith("_ms") and k.startswith("batch")), key=lambda k: int(k[5:-3])):
            b = key[5:-3]
            print(f"| {label} ({net.get('resolution')}px in, {net.get('texture')}px texture, {net.get('faces')} faces) | {b} | "
                  f"{f(net[key])} | {f(net[f'batch{b}_ms_per_image'])} |")
    e2e = L.get("end_to_end", {})
    for key in sorted((k for k in e2e if k.endswith("_ms") and k.startswith("e2e_batch")), key=lambda k: int(k[9:-3])):
        b = key[9:-3]
        print(f"| image file -> GLB file | {b} | {f(e2e[key])} | {f(e2e[f'e2e_batch{b}_ms_per_image'])} |")
    pti = L.get("pti")
    if pti:
        print(f"| PTI {pti['steps_w']}+{pti['steps_g']} steps ({pti['generator']} step {pti['generator_step']}, "
              f"{pti['feature_space']}) | 1 | {f(pti['pti_seconds'] * 1000)} | {f(pti['pti_seconds'] * 1000)} |")
        print(f"\nPTI / paper-size network (batch 1): **{f(pti.get('ratio_to_paper_network_batch1'), 3)}x**; PTI / the arms' "
              f"network (batch 1): **{f(pti.get('ratio_to_network_batch1'), 3)}x**; PTI / image->GLB (batch 1): "
              f"**{f(pti.get('ratio_to_end_to_end_batch1'), 3)}x** (goal >= 1000x). Measured while the other arms shared "
              f"the GPU: see the rows' notes in latency/bench.log.")
elif "latency" in arms:
    print("\nlatency: not run")
EOF
}

case "${1:-}" in
  arms) echo "$ARMS" ;;
  prepare) prepare ;;
  full) train_arm full --schedule.stage2-start $S2 --schedule.stage3-start $S3 ;;
  nostages) train_arm nostages ;;  # each arm's fields: benchmarks/arms/progressive/ARM.yaml; stage starts from STEPS here
  sameview) train_arm sameview --schedule.stage2-start $STEPS --schedule.stage3-start $STEPS ;;
  nomvd) train_arm nomvd --schedule.stage2-start $S2 --schedule.stage3-start $S3 ;;
  latency) latency ;;
  report) report ;;
  all) prepare; for a in $ARMS; do bash "$0" "$a"; done; report ;;
  *) echo "usage: $0 arms|prepare|${ARMS// /|}|report|all" >&2; exit 2 ;;
esac

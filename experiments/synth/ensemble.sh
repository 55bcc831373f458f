#!/usr/bin/env bash
# The CMPL recipe end to end on SynthMG (iMiGUE layout), on CPU:
#   two different skeleton recognizers -> predictions on val and test -> late fusion
#   (temperature-scaled soft voting) -> pseudo-labels on test (alpha 0.65) -> retrain the
#   first recognizer from scratch on train ∪ val ∪ test(pseudo) with its unchanged config.
# SynthMG's test labels are known, so pseudo-label accuracy and before/after top-1 are real.
#
#   bash experiments/synth/ensemble.sh            # ~12 min on 2 CPU cores
#   EPOCHS=2 OUT=/tmp/ens bash experiments/synth/ensemble.sh   # quick smoke run
set -euo pipefail
cd "$(dirname "$0")/../.."
MGR=${MGR:-mgr}
ROOT=${ROOT:-data/synthmg_imigue}
OUT=${OUT:-runs/synth_ensemble}
EPOCHS=${EPOCHS:-16}
ALPHA=${ALPHA:-0.65}
mkdir -p "$OUT"
[ -f "$ROOT/synthmg.json" ] || $MGR synth --layout imigue --out "$ROOT" --seed 0

# The demo config, writing under $OUT/<name> instead of runs/synth_stcnn.
config() { sed "s#runs/synth_stcnn#$OUT/$1#g" experiments/synth/stcnn.yaml > "$OUT/$1.yaml"; }
common=(--data.init_args.root "$ROOT" --trainer.max_epochs "$EPOCHS"
        --model.init_args.scheduler.init_args.T_max "$EPOCHS")
# Model B sees all 35 joints of the light_hand csv and pools over joints: another view.
model_b=(--data.init_args.keypoints imigue_light_hand_35 --model.init_args.num_joints 35
         --model.init_args.readout mean)

fit_predict() {  # name, extra args...
  local name=$1; shift
  config "$name"
  $MGR fit --config "$OUT/$name.yaml" "${common[@]}" "$@"
  for split in val test; do
    $MGR predict --config "$OUT/$name.yaml" "${common[@]}" "$@" \
      --ckpt_path "$OUT/$name/checkpoints/best.ckpt" \
      --data.init_args.predict_split "$split" --prediction_writer.out_dir "$OUT/preds/$name"
  done
}

fit_predict stcnn22
fit_predict stcnn35 "${model_b[@]}"
$MGR fuse --preds "$OUT/preds/stcnn22" "$OUT/preds/stcnn35" --val-split val --test-split test \
  --metric top1 --temperature 2.5 --out "$OUT/preds/fused" | tee "$OUT/fusion.txt"
$MGR pseudo-label --preds "$OUT/preds/fused" --split test --alpha "$ALPHA" \
  --out "$OUT/pseudo_labels.json" | tee "$OUT/pseudo_labels.txt"
# Retrain model A from scratch, unchanged config plus the pseudo-labels, and test it.
config stcnn22_pseudo
$MGR fit --config "$OUT/stcnn22_pseudo.yaml" "${common[@]}" \
  --data.init_args.extra_labels "$OUT/pseudo_labels.json"
for name in stcnn22 stcnn22_pseudo; do
  $MGR test --config "$OUT/$name.yaml" "${common[@]}" \
    --ckpt_path "$OUT/$name/checkpoints/best.ckpt" 2>&1 | tee "$OUT/test_$name.txt"
done
echo
echo "== before / after pseudo-labelling (test top-1) =="
grep -H "test top1" "$OUT"/test_stcnn22.txt "$OUT"/test_stcnn22_pseudo.txt

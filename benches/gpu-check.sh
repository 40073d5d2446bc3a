#!/usr/bin/env bash
# The check run on a borrowed GPU machine that has no Rust toolchain, from the binaries that
# benches/gpu-build.sh built elsewhere and packed into gpu-carry/ (the device tool's `carry`):
#
#   bash benches/gpu-check.sh [CARRY_DIR]     (default: gpu-carry)
#
# No cargo and no network: it unpacks the carried executables, puts the NVIDIA libraries of the
# machine's python (site-packages/nvidia/*/lib: cuBLAS, cuRAND, NVRTC, the runtime, NCCL) on
# LD_LIBRARY_PATH, and runs the stages below, each with a time budget, all within TOTAL seconds
# (default 540, inside the device tool's 10-minute command), in the order that tells the most if
# time runs out. Each stage logs to <stage>.log; the table goes to summary.md. Logs and the
# runs' metrics (no weights) are packed into logs.tar.gz: the device tool returns at most 8 files
# from $OUT, so summary.md, bench.md and logs.tar.gz are all that land there ($OUT when set,
# else gpu-check-<time>/).
#   unpack       checksums against MANIFEST, xz -d
#   libraries    the pip packages' lib folders; `ldd` names any library still missing
#   start        `hmreg --version`, the test executable's `--list` (with a stub libcuda where the
#                machine has no driver, to show that the binaries start; then the check stops)
#   gpu          nvidia-smi lists a GPU and the driver's libcuda is found; else `hmreg train
#                --device cuda` must fail with a message, not a panic, and the check stops here
#   tests        tests/gpu_suite.rs (device parity, tiny training, resume, precision, data
#                parallel) with HMREG_TEST_DEVICE=cuda
#   train        the quick start on cuda in f32, killed after epoch 2 of 3
#   resume-cpu   the same run resumed on the CPU from the GPU's checkpoint (epoch 3)
#   eval         `hmreg eval` of the built-in face68 model on synthetic faces: cuda vs the CPU
#   predict      `hmreg predict` with the same model and faces: cuda vs the CPU, point by point
#   bench-f32    the speed bench's model rows (train step, inference at batch 1 and 32, peak
#                device memory) for both full-size models next to PyTorch on the same GPU
#   train-bf16   the quick start on cuda in bf16 (2 epochs)
#   bench-bf16   the speed rows in bf16 (autocast in PyTorch)
#   nccl         the `nccl` build starts and finds libnccl (one GPU: no multi-GPU run)
# The exit code is 0 only when no stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARRY=$(cd "${1:-gpu-carry}" 2>/dev/null && pwd || echo "$ROOT/${1:-gpu-carry}")
TOTAL=${TOTAL:-540}
RESULTS=${OUT:-$ROOT/gpu-check-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hmreg-gpu-check.XXXXXX")
LOG=$WORK/logs
BIN=$WORK/bin
mkdir -p "$LOG" "$BIN"
declare -a NAMES=() RESULT=() NOTES=()
export ROOT CARRY WORK LOG BIN

record() {
    NAMES+=("$1")
    RESULT+=("$2")
    NOTES+=("$3")
    echo "[$1] $2${3:+ - $3}"
}
note() { NOTES[${#NOTES[@]}-1]+="; $1"; }

summary() {
    local failed=0 i
    {
        echo "| stage | result | note |"
        echo "|---|---|---|"
        for i in "${!NAMES[@]}"; do
            echo "| ${NAMES[$i]} | ${RESULT[$i]} | ${NOTES[$i]} |"
        done
    } >"$RESULTS/summary.md"
    for i in "${!NAMES[@]}"; do [ "${RESULT[$i]}" = FAIL ] && failed=1; done
    # Run folders: metrics and configs, not weights (the returned files are size-limited).
    tar -czf "$RESULTS/logs.tar.gz" -C "$WORK" --exclude='*.safetensors' --exclude=bin \
        --exclude=synth68 --exclude=datasets . 2>/dev/null
    echo
    [ -s "$RESULTS/bench.md" ] && cat "$RESULTS/bench.md" && echo
    cat "$RESULTS/summary.md"
    echo
    echo "after ${SECONDS} s; table and logs: $RESULTS (summary.md, logs.tar.gz)"
    exit $failed
}

# Runs stage $1 with a budget of $2 seconds (at most what is left of TOTAL); the rest is the
# command, run from $WORK, its output in $LOG/<stage>.log.
stage() {
    local name=$1 budget=$2
    shift 2
    local left=$((TOTAL - SECONDS))
    if [ "$left" -lt 5 ]; then
        record "$name" SKIP "no time left of the ${TOTAL} s"
        return 1
    fi
    [ "$budget" -gt "$left" ] && budget=$left
    local t0=$SECONDS rc=0
    # Through bash, so that a stage can be one of the functions below (exported).
    (cd "$WORK" && timeout -k 5 "$budget" bash -c '"$@"' stage "$@") >"$LOG/$name.log" 2>&1 \
        || rc=$?
    if [ $rc -eq 0 ]; then
        record "$name" PASS "$((SECONDS - t0)) s"
        return 0
    fi
    local why="exit $rc"
    [ $rc -eq 124 ] && why="over its ${budget} s budget"
    record "$name" FAIL "$why after $((SECONDS - t0)) s; $(grep -v '^\s*$' "$LOG/$name.log" | tail -n1 | head -c 160)"
    return 1
}

# --- unpack
unpack() {
    [ -f "$CARRY/MANIFEST" ] || { echo "no $CARRY/MANIFEST: run benches/gpu-build.sh and carry $CARRY"; return 1; }
    cat "$CARRY/MANIFEST"
    (cd "$CARRY" && sha256sum --check --quiet MANIFEST) || return 1
    local f
    for f in "$CARRY"/*.xz; do
        local name=${f##*/}
        xz -dc "$f" >"$BIN/${name%.xz}" || return 1
        chmod +x "$BIN/${name%.xz}"
    done
    ls -l "$BIN"
}
export -f unpack
stage unpack 30 unpack || summary
note "$(head -n1 "$CARRY/MANIFEST")"

# --- libraries: the pip packages' lib folders, then what the executables still miss
LIBS=$(python3 -c '
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()] + sys.path
seen = []
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        if d not in seen and os.path.isdir(d):
            seen.append(d)
print(":".join(seen))' 2>/dev/null)
# A build machine's own copy (benches/gpu-build.sh's cache), for a dry run without the image.
for d in "${HMREG_CUDA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hmreg-cuda}"/13.0/libs/nvidia/*/lib; do
    [ -d "$d" ] && LIBS=${LIBS:+$LIBS:}$d
done
export LD_LIBRARY_PATH=${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
missing_libs() { ldd "$1" 2>&1 | awk '/not found/ { print $1 }' | sort -u | tr '\n' ' '; }
{
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    for exe in "$BIN"/*; do echo "== $exe"; ldd "$exe"; done
} >"$LOG/libraries.log" 2>&1
MISSING=$(missing_libs "$BIN/hmreg")
OTHERS=$(echo "$MISSING" | tr ' ' '\n' | grep -v '^libcuda\.so' | tr '\n' ' ')
if [ -n "${OTHERS// /}" ]; then
    record libraries FAIL "not found: $OTHERS(python3's site-packages has no nvidia/*/lib holding them)"
    summary
fi
record libraries PASS "$(echo "$LIBS" | tr ':' '\n' | grep -c .) pip lib folders"
NO_DRIVER=
[ -n "${MISSING// /}" ] && NO_DRIVER="libcuda.so.1 (the NVIDIA driver's library) not found"

# --- start: the binaries run (on a stub libcuda where there is no driver)
if [ -n "$NO_DRIVER" ]; then
    # The build's stub: every driver call answers CUDA_ERROR_STUB_LIBRARY.
    mkdir -p "$WORK/stub"
    [ -f "$BIN/libcuda-stub.so" ] && mv "$BIN/libcuda-stub.so" "$WORK/stub/libcuda.so.1"
    "$BIN/hmreg" --version >"$LOG/no-stub.log" 2>&1
    export LD_LIBRARY_PATH=$WORK/stub:$LD_LIBRARY_PATH
fi
start() {
    "$BIN/hmreg" --version && "$BIN/hmreg" train --help >/dev/null \
        && "$BIN/gpu_suite" --list | tail -n 3 \
        && { [ ! -x "$BIN/hmreg-nccl" ] || "$BIN/hmreg-nccl" --version; }
}
export -f start
if stage start 20 start; then
    note "$(head -n1 "$LOG/start.log")${NO_DRIVER:+ (on the stub libcuda)}"
else
    summary
fi

# --- gpu: a GPU and its driver, or a clear refusal
if command -v nvidia-smi >/dev/null \
    && nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader \
        >"$LOG/gpus.txt" 2>&1 && [ -s "$LOG/gpus.txt" ] && [ -z "$NO_DRIVER" ]; then
    record gpu PASS "$(head -n1 "$LOG/gpus.txt")"
else
    why=${NO_DRIVER:-"nvidia-smi lists no GPU ($(head -c 120 "$LOG/gpus.txt" 2>/dev/null || echo 'not installed'))"}
    (cd "$WORK" && timeout 30 "$BIN/hmreg" train --device cuda --epochs 1 --quiet --out no-gpu) \
        >"$LOG/no-gpu.log" 2>&1
    rc=$?
    # The error is the first line (a backtrace may follow under RUST_BACKTRACE).
    msg=$(grep -v '^\s*$' "$LOG/no-gpu.log" | head -n1 | head -c 300)
    if [ $rc -ne 0 ] && [ $rc -lt 124 ] && ! grep -q 'panicked' "$LOG/no-gpu.log"; then
        record no-gpu-message PASS "train --device cuda: exit $rc, \"$msg\""
    else
        record no-gpu-message FAIL "train --device cuda: exit $rc (a panic or a crash): $msg"
    fi
    record gpu FAIL "no GPU to check: $why; stopping here"
    summary
fi

# --- tests: the GPU-relevant tests on the device
if stage tests 150 env HMREG_TEST_DEVICE=cuda HMREG_BIN="$BIN/hmreg" "$BIN/gpu_suite"; then
    note "$(grep -h '^test result' "$LOG/tests.log" | tail -n1)"
else
    note "failed: $(grep -E '^    [a-z_:]+$' "$LOG/tests.log" | tr -d ' ' | tr '\n' ' ' | head -c 300)"
fi

# --- the quick start on the GPU, resumed on the CPU
last_epoch() {
    python3 - "$WORK/$1/metrics.jsonl" <<'PY' 2>/dev/null
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = rows[-1]
print(f"epoch {r['epoch']}: train loss {r['train_loss']:.4f}, "
      + ", ".join(f"{k} {v:.4f}" for k, v in r.get("metrics", {}).items() if isinstance(v, float))
      + f", {r.get('images_per_second', float('nan')):.0f} images/s")
PY
}
if stage train 60 "$BIN/hmreg" train --device cuda --epochs 3 --stop-after-epochs 2 --quiet \
    --out quickstart; then
    note "$(last_epoch quickstart)"
    stage resume-cpu 60 "$BIN/hmreg" train --out quickstart --resume --device cpu --quiet \
        && note "$(last_epoch quickstart)"
else
    record resume-cpu SKIP "no GPU checkpoint"
fi

# --- eval and predict: the built-in model on synthetic faces, cuda against the CPU
compare_eval() {
    local d
    for d in cpu cuda; do
        "$BIN/hmreg" eval --checkpoint "$ROOT/models/face68/model.safetensors" \
            --config "$ROOT/models/face68/config.toml" --data synth68 --split val --json \
            --device "$d" >"eval-$d.json" || return 1
    done
    python3 - <<'PY'
import json
cpu, gpu = (json.load(open(f"eval-{d}.json"))["metrics"] for d in ("cpu", "cuda"))
worst = 0.0
for k in ("nmae", "nme", "auc"):
    rel = abs(gpu[k] - cpu[k]) / max(abs(cpu[k]), 1e-12)
    worst = max(worst, rel)
    print(f"{k}: cpu {cpu[k]:.6f} cuda {gpu[k]:.6f} relative difference {rel:.2e}")
# f32 on both sides on the same weights: only the order of the sums differs.
assert worst <= 1e-3, f"cuda's metrics differ from the CPU's by {worst:.2e} (bound 1e-3)"
PY
}
export -f compare_eval
compare_predict() {
    local d
    for d in cpu cuda; do
        "$BIN/hmreg" predict synth68/val/images --no-detect --json --device "$d" \
            >"predict-$d.json" || return 1
    done
    python3 - <<'PY'
import json, math
def points(d):
    doc = json.load(open(f"predict-{d}.json"))
    return {p["path"]: [(q["x"], q["y"]) for f in p["faces"] for q in f["points"]]
            for p in doc["predictions"]}
cpu, gpu = points("cpu"), points("cuda")
assert cpu.keys() == gpu.keys() and cpu, "different images"
dist = [math.dist(a, b) for k in cpu for a, b in zip(cpu[k], gpu[k], strict=True)]
print(f"{len(cpu)} images, {len(dist)} points: max distance {max(dist):.4f} px, "
      f"mean {sum(dist) / len(dist):.5f} px")
assert max(dist) <= 0.05, f"a point moved {max(dist):.3f} px between the CPU and cuda (bound 0.05)"
PY
}
export -f compare_predict
if stage synth 20 "$BIN/hmreg" data synth --out synth68 --train 0 --val 64 --test 0 --size 256 \
    --seed 0; then
    stage eval 40 compare_eval && note "$(grep '^nmae' "$LOG/eval.log")"
    stage predict 40 compare_predict && note "$(tail -n1 "$LOG/predict.log")"
fi

# --- the speed rows next to PyTorch, f32 then (after the bf16 quick start) bf16
bench() {
    if stage "bench-$1" 100 "$BIN/speed" --device cuda --precision "$1" --batch 32 --reps 3 \
        --warmup 1 --skip photo,predict,pipeline,codec,e2e; then
        {
            echo "### speed, cuda, $1"
            sed -n '/^cuda/,$p' "$LOG/bench-$1.log"
        } >>"$RESULTS/bench.md"
    fi
}
(cd "$WORK" && python3 -c 'import torch; print(torch.__version__, torch.cuda.is_available())') \
    >"$LOG/torch.log" 2>&1
bench f32
note "PyTorch $(head -n1 "$LOG/torch.log")"
if stage train-bf16 45 "$BIN/hmreg" train --device cuda --precision bf16 --epochs 2 --quiet \
    --out quickstart-bf16; then
    note "$(last_epoch quickstart-bf16)"
fi
bench bf16

# --- the nccl build: starts and finds libnccl (a data-parallel run needs 2 GPUs)
if [ -x "$BIN/hmreg-nccl" ]; then
    missing=$(missing_libs "$BIN/hmreg-nccl")
    if [ -z "${missing// /}" ]; then
        ngpu=$(grep -c . "$LOG/gpus.txt")
        record nccl PASS "libnccl found; $ngpu GPU(s): $([ "$ngpu" -lt 2 ] && echo 'no multi-GPU run')"
    else
        record nccl FAIL "not found: $missing"
    fi
else
    record nccl SKIP "not carried"
fi
summary

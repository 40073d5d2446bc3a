#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU and nothing prepared but a Rust toolchain and pip:
#
#   bash benches/gpu-check.sh [LOG_DIR]
#
# Stages, each with a time budget, all within 10 minutes on a current datacenter GPU (a stage
# gets at most what is left of the 600 s), each logged to LOG_DIR/<stage>.log (default:
# gpu-check-<date>/), then one PASS/FAIL/SKIP table:
#   1. prerequisites: cargo, python3 with pip, nvidia-smi listing a GPU (no GPU: exit 1 here)
#   2. nvcc: the system's, else nvidia-cuda-nvcc from PyPI (installed into LOG_DIR/cuda)
#   3. build: `cargo build --release --features cuda --all-targets`, reused by every later stage
#   4. tests: the whole test suite on the GPU (`HMREG_TEST_DEVICE=cuda`), parity tests included
#   5. train, train-bf16: the quick start on `cuda` (2 epochs in f32, 1 in bf16), loss and images/s
#   6. torch: PyTorch for the reference rows (pip install torch when python3 cannot import it)
#   7. bench-f32, bench-bf16: the speed bench's model rows on the GPU next to PyTorch on the same
#      GPU: training step (batch 32), inference at batch 1 and 32, peak device memory, for both
#      full-size models (256x256)
#   8. with 2 or more GPUs (4 more minutes): NCCL from PyPI when the system has none, the `nccl`
#      build, and the quick start at a global batch of 8 per GPU on one GPU and then on all of
#      them (`--devices`), their loss curves and images/s side by side
# The exit code is 0 only when no stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-gpu-check-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$LOG"
LOG=$(cd "$LOG" && pwd)
declare -a NAMES=() RESULTS=() NOTES=()

record() { NAMES+=("$1"); RESULTS+=("$2"); NOTES+=("$3"); echo "[$1] $2 ${3:+- $3}"; }

summary() {
    echo
    echo "| stage | result | note |"
    echo "|---|---|---|"
    local failed=0
    for i in "${!NAMES[@]}"; do
        echo "| ${NAMES[$i]} | ${RESULTS[$i]} | ${NOTES[$i]} |"
        [ "${RESULTS[$i]}" = FAIL ] && failed=1
    done
    echo
    echo "full logs: $LOG"
    exit $failed
}

# Runs stage $1 with a time budget of $2 seconds (at most what is left of the 600 s); the rest is
# the command.
TOTAL=600
stage() {
    local name=$1 budget=$2
    shift 2
    local left=$((TOTAL - SECONDS))
    if [ "$left" -lt 10 ]; then
        record "$name" FAIL "no time left of the ${TOTAL} s"
        return 1
    fi
    [ "$budget" -gt "$left" ] && budget=$left
    local t0=$SECONDS
    if timeout "$budget" "$@" >"$LOG/$name.log" 2>&1; then
        record "$name" PASS "$((SECONDS - t0)) s"
        return 0
    fi
    local rc=$?
    local why="exit $rc"
    [ $rc -eq 124 ] && why="over its ${budget} s budget"
    record "$name" FAIL "$why after $((SECONDS - t0)) s; see $LOG/$name.log"
    return 1
}

# 1. prerequisites
missing=()
command -v cargo >/dev/null || missing+=(cargo)
command -v python3 >/dev/null || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=("pip (python3 -m pip)")
if [ ${#missing[@]} -gt 0 ]; then
    record prerequisites FAIL "missing: ${missing[*]}"
    summary
fi
if ! command -v nvidia-smi >/dev/null; then
    record prerequisites FAIL "no NVIDIA GPU: nvidia-smi is not installed (this check needs a machine with an NVIDIA GPU and its driver)"
    summary
fi
if ! nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader >"$LOG/gpus.txt" 2>&1 \
    || [ ! -s "$LOG/gpus.txt" ]; then
    record prerequisites FAIL "no NVIDIA GPU: nvidia-smi lists none ($(head -c 200 "$LOG/gpus.txt"))"
    summary
fi
GPU=$(head -n1 "$LOG/gpus.txt")
CAP=$(echo "$GPU" | cut -d, -f2 | tr -d ' .')
record prerequisites PASS "$GPU; $(cargo --version)"

# 2. nvcc
if ! command -v nvcc >/dev/null; then
    if stage nvcc 90 python3 -m pip install --target "$LOG/cuda" nvidia-cuda-nvcc nvidia-cuda-cccl; then
        C=$(dirname "$(dirname "$(find "$LOG/cuda" -path '*/bin/nvcc' | head -n1)")")
        export CUDA_HOME=$C NVCC=$C/bin/nvcc PATH=$C/bin:$PATH
    else
        summary
    fi
else
    record nvcc PASS "system $(command -v nvcc)"
fi
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$CAP}

# 3. build (binary, tests, benches), reused by every later stage
stage build 240 cargo build --release --features cuda --all-targets || summary

# 4. the test suite on the device
stage tests 120 env HMREG_TEST_DEVICE=cuda cargo test --release --features cuda

# 5. the quick start on the GPU, in f32 and in bf16
last_line() { tail -n1 "$LOG/$1.log" | head -c 200; }
if stage train 45 target/release/hmreg train --device cuda --epochs 2 --json \
    --out "$LOG/quickstart"; then
    NOTES[${#NOTES[@]}-1]+="; $(last_line train)"
fi
if stage train-bf16 30 target/release/hmreg train --device cuda --precision bf16 --epochs 1 \
    --json --out "$LOG/quickstart-bf16"; then
    NOTES[${#NOTES[@]}-1]+="; $(last_line train-bf16)"
fi

# 6. PyTorch for the reference rows
if python3 -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
    record torch PASS "$(python3 -c 'import torch; print(torch.__version__)')"
else
    stage torch 90 python3 -m pip install torch
fi

# 7. the speed bench's model rows on the GPU, PyTorch beside them
for p in f32 bf16; do
    if stage "bench-$p" 60 cargo bench --features cuda --bench speed -- --device cuda \
        --precision "$p" --batch 32 --reps 3 --warmup 1 --skip photo,pipeline,codec; then
        echo "--- speed, $p ---" >>"$LOG/bench.md"
        sed -n '/^cuda/,/^GFLOP/p' "$LOG/bench-$p.log" >>"$LOG/bench.md"
    fi
done
[ -s "$LOG/bench.md" ] && cat "$LOG/bench.md"

# 8. data-parallel training on every GPU, against one GPU at the same global batch
NGPU=$(grep -c . "$LOG/gpus.txt")
if [ "$NGPU" -lt 2 ]; then
    record parallel SKIP "one GPU"
    summary
fi
TOTAL=$((TOTAL + 240))
if ! ldconfig -p 2>/dev/null | grep -q libnccl; then
    stage nccl 60 python3 -m pip install --target "$LOG/nccl" nvidia-nccl-cu13 || summary
    export LD_LIBRARY_PATH=$(dirname "$(find "$LOG/nccl" -name 'libnccl.so*' | head -n1)"):${LD_LIBRARY_PATH:-}
fi
stage build-nccl 120 cargo build --release --features nccl || summary
DEVICES=$(seq -s, -f 'cuda:%g' 0 $((NGPU - 1)))
BATCH=$((8 * NGPU))
stage parallel-1 45 target/release/hmreg train --device cuda --batch-size "$BATCH" --epochs 3 \
    --quiet --out "$LOG/parallel-1"
if stage "parallel-$NGPU" 45 target/release/hmreg train --devices "$DEVICES" \
    --batch-size "$BATCH" --epochs 3 --quiet --out "$LOG/parallel-$NGPU"; then
    python3 - "$LOG/parallel-1" "$LOG/parallel-$NGPU" "$NGPU" <<'PY' | tee "$LOG/parallel.md"
import json, sys
one, many, n = sys.argv[1], sys.argv[2], sys.argv[3]
rows = lambda d: [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
print(f"| epoch | train loss, 1 GPU | train loss, {n} GPUs | images/s, 1 GPU | images/s, {n} GPUs |")
print("|---|---|---|---|---|")
for a, b in zip(rows(one), rows(many)):
    print(f"| {a['epoch']} | {a['train_loss']:.5f} | {b['train_loss']:.5f} | "
          f"{a['images_per_second']:.0f} | {b['images_per_second']:.0f} |")
PY
fi
summary

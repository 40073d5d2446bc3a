#!/usr/bin/env bash
# Builds, on a machine without a GPU, everything benches/gpu-check.sh runs on a borrowed one that
# has no Rust toolchain (the device tool's H200: CUDA 13.0, driver 580):
#
#   bash benches/gpu-build.sh [CARRY_DIR]      (default: gpu-carry/, git-ignored)
#
# nvcc, the headers and the libraries to link against come from PyPI (.ci/cuda-env.sh, cached in
# ~/.cache/hmreg-cuda), pinned to CUDA 13.0 and compute capability 9.0 (H100/H200). The CUDA build
# has its own target dir (target/cuda), so the CPU build stays valid. Into CARRY_DIR, stripped of
# debug info and xz-compressed:
#   hmreg        the CUDA binary (`--features cuda`)
#   gpu_suite    one test executable with the GPU-relevant tests (tests/gpu_suite.rs)
#   speed        the speed bench (benches/speed.rs), for the rows next to PyTorch
#   hmreg-nccl   the `nccl` build of the binary (data parallel over NCCL), when it fits
#   libcuda-stub.so  the link-time stub of the driver library (.ci/cuda-env.sh): where a machine
#                has no driver, the check starts the binaries on it to show they run
# plus MANIFEST (what was built, from which commit, with which toolchain and checksums). Then it
# prints each size and the one device command. The device tool carries at most 64 MiB, the
# working tree (its tracked files) included: the folder must fit in what the tree leaves, less
# SPARE_MIB (default 4). When it does not, the nccl binary is left out (it is the one stage
# that cannot run on a single GPU anyway); if it still does not fit, the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=${1:-gpu-carry}
SPARE_MIB=${SPARE_MIB:-4}
t_start=$SECONDS

# shellcheck source=../.ci/cuda-env.sh
. .ci/cuda-env.sh link
# Not target/: the CUDA build's features would invalidate the CPU build's artifacts. (A copy of
# target/release does not help: build scripts' outputs record their absolute paths, so every
# crate with one, and all that depend on them, rebuilds.)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
echo "gpu-build: $("$NVCC" --version | tail -n1), compute capability $CUDA_COMPUTE_CAP, CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION, target dir $CARGO_TARGET_DIR"

# The executables of one cargo invocation, as "name path" lines (test and bench targets carry a
# hash in their file names; cargo's JSON messages name them).
executables() {
    cargo "$@" --message-format=json-render-diagnostics | python3 -c '
import json, sys
found = {}
for line in sys.stdin:
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["kind"][0] in ("bin", "test", "bench"):
        found[m["target"]["name"]] = m["executable"]
for name, exe in found.items():
    print(name, exe)'
}

rm -rf "$CARRY.tmp"
mkdir -p "$CARRY.tmp"
# Strips debug info (the line tables; function names stay, for backtraces) and compresses.
pack() {
    local name=$1 exe=$2
    strip --strip-debug -o "$CARRY.tmp/$name" "$exe"
    xz -6 -T0 "$CARRY.tmp/$name"
}

t0=$SECONDS
# One invocation: the integration test needs the binary, so hmreg comes with it.
executables test --release --features cuda --no-run --test gpu_suite --bench speed \
    >"$CARRY.tmp/targets"
t_cuda=$((SECONDS - t0))
while read -r name exe; do
    pack "$name" "$exe"
done <"$CARRY.tmp/targets"

xz -6 -c "$CUDA_ROOT/lib/libcuda.so" >"$CARRY.tmp/libcuda-stub.so.xz"

t0=$SECONDS
nccl=skipped
if executables build --release --features nccl --bin hmreg >"$CARRY.tmp/targets-nccl"; then
    pack hmreg-nccl "$(awk '$1 == "hmreg" { print $2 }' "$CARRY.tmp/targets-nccl")"
    nccl=built
else
    echo "gpu-build: the nccl build failed; carrying the cuda build only" >&2
fi
t_nccl=$((SECONDS - t0))

{
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (uncommitted changes)')"
    echo "$(rustc --version); $("$NVCC" --version | tail -n1)"
    echo "CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION"
    echo "build times: cuda ${t_cuda} s, nccl ${t_nccl} s ($nccl)"
    (cd "$CARRY.tmp" && sha256sum -- *.xz)
} >"$CARRY.tmp/MANIFEST"
rm -f "$CARRY.tmp"/targets*
rm -rf "$CARRY"
mv "$CARRY.tmp" "$CARRY"

sizes() {
    total=0
    for f in "$CARRY"/*; do
        bytes=$(stat -c %s "$f")
        total=$((total + bytes))
        printf '  %-16s %7.1f MiB\n' "${f##*/}" "$(echo "$bytes / 1048576" | bc -l)"
    done
}
mib() { echo "$1 / 1048576" | bc -l; }
tree=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s }')
limit=$(((64 - SPARE_MIB) * 1048576 - tree))
echo
echo "gpu-build: $CARRY/ after $((SECONDS - t_start)) s:"
sizes
if [ "$total" -gt "$limit" ] && [ -e "$CARRY/hmreg-nccl.xz" ]; then
    echo "gpu-build: over the carry limit with the nccl binary; leaving it out" >&2
    rm "$CARRY/hmreg-nccl.xz"
    sed -i 's/ (built)$/ (built, left out: over the carry limit)/; /hmreg-nccl.xz$/d' "$CARRY/MANIFEST"
    sizes
fi
printf '  %-16s %7.1f MiB; with the working tree (%.1f MiB) %.1f of 64 MiB (limit %.1f, %s MiB spare)\n' \
    total "$(mib "$total")" "$(mib "$tree")" "$(mib $((total + tree)))" \
    "$(mib $((limit + tree)))" "$SPARE_MIB"
if [ "$total" -gt "$limit" ]; then
    echo "gpu-build: $CARRY/ does not fit the device tool's 64 MiB carry limit" >&2
    exit 1
fi
cat <<EOF

The device command (the device tool's run, one call):
  run(command="bash benches/gpu-check.sh", carry=["$CARRY"], timeout_s=600)
Dry run here (no GPU: unpacks, starts the binaries, stops where the driver is missing):
  bash benches/gpu-check.sh
EOF

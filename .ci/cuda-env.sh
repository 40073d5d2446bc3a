# Sourced, not run: a CUDA build environment without a CUDA install or a GPU, shared by
# .ci/cuda-check (compile check) and benches/gpu-build.sh (binaries for a borrowed GPU).
#
#   . .ci/cuda-env.sh compile   nvcc and the headers (~320 MB from PyPI)
#   . .ci/cuda-env.sh link      also the libraries Candle's CUDA build links against (~900 MB
#                               more: cuBLAS, cuRAND, NVRTC, the runtime) and a stub libcuda
#
# Everything is pinned to CUDA 13.0, the version of the GPU machine this project borrows (driver
# 580): PTX from a newer nvcc is refused by an older driver («unsupported toolchain»), and
# cudarc, told the version through CUDARC_CUDA_VERSION, asks the driver for nothing newer.
# PyPI's CUDA packages are kept between runs in $HMREG_CUDA_DIR (default ~/.cache/hmreg-cuda),
# one folder per version and set, because `pip install --target` into a folder that already
# holds `nvidia/` replaces it.
#
# Exports CUDA_HOME, NVCC, PATH, CUDA_COMPUTE_CAP (90: H100/H200, no GPU to ask),
# CUDARC_CUDA_VERSION, and HMREG_CUDA_LIB (the folder of the linked libraries; `link` only).

hmreg_cuda_env() {
    local set=${1:-compile}
    local version=13.0
    local root=${HMREG_CUDA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hmreg-cuda}/$version
    local toolkit=$root/toolkit
    local packages=(nvidia-cuda-nvcc nvidia-nvvm nvidia-cuda-cccl nvidia-cuda-crt nvidia-cuda-runtime)
    if [ ! -x "$toolkit/nvidia/cu13/bin/nvcc" ]; then
        echo "cuda-env: installing CUDA $version's nvcc and headers from PyPI into $toolkit" >&2
        rm -rf "$toolkit"
        # Every package pinned: unpinned, pip pulls the newest nvvm and crt beside nvcc 13.0.
        python3 -m pip install --quiet --disable-pip-version-check --target "$toolkit" \
            "${packages[@]/%/==$version.*}" || return 1
    fi
    local c=$toolkit/nvidia/cu13
    export CUDA_HOME=$c NVCC=$c/bin/nvcc PATH=$c/bin:$PATH
    export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
    [ "$set" = link ] || return 0

    local libs=$root/libs
    if [ ! -e "$libs/lib/libcuda.so" ]; then
        echo "cuda-env: installing CUDA $version's libraries from PyPI into $libs" >&2
        rm -rf "$libs"
        python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$libs" \
            "nvidia-cuda-runtime==$version.*" "nvidia-cuda-nvrtc==$version.*" \
            "nvidia-cublas==$version.*" "nvidia-curand==10.4.0.*" "nvidia-nccl-cu13==2.27.*" \
            || return 1
        hmreg_cuda_link_dir "$libs" || return 1
    fi
    # cudarc's build script adds <root>/lib of every CUDA root variable set to the linker's search
    # path; CUDA_ROOT's `lib/` holds the unversioned names (the wheels ship libcublas.so.13 only).
    # Not RUSTFLAGS: those are part of every crate's build hash, and the CUDA build reuses the
    # CPU build's dependencies when it starts from a copy of target/release.
    export CUDA_ROOT=$libs HMREG_CUDA_LIB=$libs/nvidia/cu13/lib
}

# The unversioned names the linker looks for, and a stub libcuda: the driver library comes with
# the driver, which a build machine has none of. The stub defines every driver function cudarc
# binds (read off its sources) as returning CUDA_ERROR_STUB_LIBRARY (34), as NVIDIA's own stub
# does, and carries the driver's soname, so the binary asks for the real libcuda.so.1 at run time.
hmreg_cuda_link_dir() {
    local libs=$1 link=$1/lib
    mkdir -p "$link"
    local lib
    for lib in "$libs"/nvidia/*/lib/lib*.so.*; do
        local name=${lib##*/}
        ln -sf "$lib" "$link/${name%%.so.*}.so"
    done
    local bindings
    bindings=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*/cudarc-*/src/driver/sys/mod.rs' | sort -V | tail -n1)
    if [ -z "$bindings" ]; then
        echo "cuda-env: cudarc's sources are not in the cargo registry (run \`cargo fetch\` first)" >&2
        return 1
    fi
    grep -o 'pub unsafe fn cu[A-Za-z0-9_]*' "$bindings" | sort -u \
        | sed 's/pub unsafe fn \(.*\)/int \1(void) { return 34; }/' >"$link/cuda_stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/cuda_stub.c"
}

hmreg_cuda_env "$@"

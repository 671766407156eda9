#!/usr/bin/env bash
# Compile every C file of lkconv's native kernels on its own with -Wall -Wextra -Werror, with gcc and (when it is
# installed) clang, for the builds the loader makes: -march=native with OpenMP (the usual one), the generic fallback
# without OpenMP, and an AVX512-BF16 target so that dwconv_bf16.c's vector path is compiled whatever this CPU has.
# A compiler without OpenMP support (clang without libomp) is checked without -fopenmp. Compile only (-c): seconds.
set -euo pipefail
cd "$(dirname "$0")/../src/lkconv/ops/native"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
base=(-std=gnu11 -fPIC -fvisibility=hidden -Wall -Wextra -Werror -c)
status=0
for cc in gcc clang; do
    if ! command -v "$cc" >/dev/null 2>&1; then
        echo "check_native: $cc not installed, skipped"
        continue
    fi
    omp=-fopenmp
    if ! echo '#include <omp.h>
int main(void) { return omp_get_max_threads() < 1; }' | "$cc" -fopenmp -x c - -o "$out/probe" >/dev/null 2>&1; then
        echo "check_native: $cc has no OpenMP here, checked without -fopenmp"
        omp=
    fi
    sets=("-O3 -march=native $omp" "-O3")
    if [ "$(uname -m)" = x86_64 ]; then sets+=("-O3 -march=x86-64-v4 -mavx512bf16 $omp"); fi
    for flags in "${sets[@]}"; do
        for src in *.c; do
            # shellcheck disable=SC2086  # flags are words
            if ! "$cc" $flags "${base[@]}" "$src" -o "$out/${src%.c}.o"; then
                echo "check_native: FAILED $cc $flags $src"
                status=1
            fi
        done
    done
    echo "check_native: $cc checked ($(ls *.c | tr '\n' ' '))"
done
exit $status

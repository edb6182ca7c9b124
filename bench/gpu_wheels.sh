#!/usr/bin/env bash
# Make the wheels folder bench/gpu_check.sh installs on a GPU machine that has torch (and the
# usual numpy, pyarrow, pandas, tokenizers, pyyaml, fsspec, huggingface-hub) but no registry.
# Run it where pip reaches a registry:
#
#   bash bench/gpu_wheels.sh [DIR] [--python-version 3.12] [EXTRA==VERSION ...]
#
# It downloads exactly the packages the pipeline needs beyond those, without their
# dependencies (about 1 MB): hydra-core, omegaconf, antlr4-python3-runtime (built here: it
# is published as a source archive only), datasets, dill, multiprocess, xxhash. mlflow is
# left out (it and its dependencies are hundreds of MB; the check then uses tracking=none);
# name more packages as EXTRA arguments. Then carry DIR to the GPU machine and run
#   bash bench/gpu_check.sh --wheels DIR
set -euo pipefail
DIR="${1:-gpu-wheels}"
[ $# -gt 0 ] && shift
PYV=3.12
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYV="$2"; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
PYTHON="${PYTHON:-python3}"
mkdir -p "$DIR"
PLATFORM=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" \
  --implementation cp "${PLATFORM[@]}" -d "$DIR" \
  'hydra-core>=1.3.2,<1.4' 'omegaconf>=2.2,<2.4' datasets dill multiprocess xxhash \
  ${EXTRA[@]+"${EXTRA[@]}"}
"$PYTHON" -m pip wheel -q --no-deps -w "$DIR" 'antlr4-python3-runtime==4.9.3'
ls -l "$DIR"
du -sh "$DIR"

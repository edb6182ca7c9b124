#!/usr/bin/env bash
# The GPU check of issue 14, in one command from the repository root of a GPU machine where
# only torch is installed and nothing can be downloaded (under 9 minutes):
#
#   bash bench/gpu_check.sh --wheels /path/to/wheels [--full-ptb]   # or GPU_CHECK_WHEELS=...
#   bash bench/gpu_check.sh --dry-run                               # CPU, tiny sizes (CI)
#
# The wheels folder (made where a registry is reachable by bench/gpu_wheels.sh) is installed
# with pip --no-index into a private folder put first on PYTHONPATH; nothing else changes.
# Without mlflow, runs use tracking=none. The data sets are read from $PIPELINE_DATA_DIR
# (default ../shared/data). The summary is printed and written to $OUT/gpu_check.txt when
# OUT is set, else to bench/results/gpu_check.txt. Other arguments go to bench/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WHEELS="${GPU_CHECK_WHEELS:-}"
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS="$2"; shift 2 ;;
    --wheels=*) WHEELS="${1#--wheels=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
SITE="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-site.XXXXXX")"
trap 'rm -rf "$SITE"' EXIT
if [ -n "$WHEELS" ]; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "error: --wheels $WHEELS holds no .whl files (make them with bench/gpu_wheels.sh)" >&2
    exit 2
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
    --find-links "$WHEELS" --target "$SITE" "$WHEELS"/*.whl
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Not pip-installed here: declare the built-in plugins' entry point the way an install would.
if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(not m.entry_points(group='pipeline.plugins'))" 2>/dev/null; then
  mkdir -p "$SITE/seqpipe-0.0.0.dist-info"
  printf 'Metadata-Version: 2.1\nName: seqpipe\nVersion: 0.0.0\n' >"$SITE/seqpipe-0.0.0.dist-info/METADATA"
  printf '[pipeline.plugins]\nbuiltin = plugins\n' >"$SITE/seqpipe-0.0.0.dist-info/entry_points.txt"
fi
missing=$("$PYTHON" -c "
import importlib.util as u
print(' '.join(m for m in ('torch', 'hydra', 'omegaconf', 'datasets', 'tokenizers', 'numpy') if u.find_spec(m) is None))")
if [ -n "$missing" ]; then
  echo "error: missing Python packages: $missing. Pass their wheels with --wheels DIR (bench/gpu_wheels.sh makes that folder)." >&2
  exit 2
fi
TRACKING=none
if "$PYTHON" -c "import mlflow" 2>/dev/null; then TRACKING=mlflow; else echo "mlflow is absent: runs use tracking=none"; fi
exec "$PYTHON" bench/gpu_check.py --tracking "$TRACKING" ${ARGS[@]+"${ARGS[@]}"}

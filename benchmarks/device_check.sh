#!/usr/bin/env bash
# Issue 18, target 2 on the GPU machine, in ONE call of the `device` tool (run from the repository root):
#
#   run(command="benchmarks/device_check.sh", carry=[".whl"], timeout_s=460)
#
# after `scripts/device_wheels.sh` has filled .whl/ in the checkout the session calls `run` from.
# Prints (and writes to $OUT/device_check.log, with a summary in $OUT/summary.md):
#   0 install   the carried wheels into $SITE (offline; .whl/optional/ in a second pip call whose
#               failure costs only those), the tree on PYTHONPATH
#   1 env       GPU (nvidia-smi), python, torch, numpy, escnn, e3nn versions, the backends found,
#               and whether escnn's R3PointConv runs on the GPU (then it is a baseline below)
#   2 pc        benchmarks/point_conv.py at the default sizes: ours-escnn, ours-e3nn, e3nn (+ escnn)
#   3 pc-large  the same at E = N k = 64k, 256k and 1M edges (d = 64)
#   4 nbody     N-body training samples/s on the GPU, full preset, dense and shared-basis kernels
#   5 qm9       QM9 training molecules/s on the GPU (ours vs SchNet, equal time budgets; the carried
#               2,000-molecule sample)
#   6 pc-compile point_conv.py --compile reduce-overhead (CUDA graphs), eager rows beside
#   7 nbody-compile N-body through torch.compile(mode="reduce-overhead")
# Each part runs in its own process under its own timeout, cut to what is left of TOTAL seconds, so
# that a failing or slow part loses only itself and the script always ends with the summary (the
# tables of every part) before the tool's limit.  Parts run in this order: the cheap and most wanted
# first, the compilations (minutes on a CPU, unknown there) last.
#
# Every size comes from a variable, so a later session can shrink the run:
#   TOTAL (400 s: with the machine's start, ~8.5 of the session's 15 device minutes), PC_CONFIGS,
#   PC_LARGE_CONFIGS, PC_COMPILE_CONFIGS, PC_METHODS, PC_COMPILE_METHODS,
#   PC_REPEATS, NBODY_ARGS, NBODY_COMPILE_ARGS, QM9_ARGS, T_<PART> (each part's own timeout, s),
#   PARTS (which parts, e.g. "pc nbody"), DEVICE (cuda), PYTHON (python3), SITE (/tmp/site).
# A dry run on a machine without a GPU, with tiny sizes, the compilations skipped (they take minutes
# on a CPU) and any Python 3.12 that has the machine's packages:
#   DEVICE=cpu SMALL=1 PYTHON=/path/to/python3.12 OUT=/tmp/dc benchmarks/device_check.sh
# (OUT: the tool's folder there; /tmp/device_out elsewhere)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
OUT=${OUT:-/tmp/device_out}  # the tool sets OUT; elsewhere outside the tree
mkdir -p "$OUT"
LOG=$OUT/device_check.log SUMMARY=$OUT/summary.md
: >"$LOG"
: >"$SUMMARY"
PYTHON=${PYTHON:-python3} SITE=${SITE:-/tmp/site} DEVICE=${DEVICE:-cuda} SMALL=${SMALL:-0}
TOTAL=${TOTAL:-400}
START=$(date +%s)

if [ "$SMALL" = 1 ]; then  # the CPU dry run: every part, tiny
  : "${PC_CONFIGS:=32x4x2x1 32x4x2x2}" "${PC_LARGE_CONFIGS:=64x4x4x1 128x4x4x1}" "${PC_COMPILE_CONFIGS:=32x4x2x1}"
  : "${PC_REPEATS:=2}" "${NBODY_ARGS:=--preset demo --kernel-basis 0 8 --steps 2 --rounds 1}"
  : "${QM9_ARGS:=--sizes 200 --n-test 50 --budget 3}" "${PARTS:=install env pc pc-large nbody qm9}"
fi
: "${PC_CONFIGS:=256x8x8x1 256x8x16x1 256x8x8x2 256x16x16x1}"  # point_conv.py's defaults
: "${PC_LARGE_CONFIGS:=4096x16x16x1 16384x16x16x1 65536x16x16x1}"  # E = 65,536, 262,144, 1,048,576; d = 64
: "${PC_COMPILE_CONFIGS:=256x8x16x1}"  # a default size: launch-bound, where CUDA graphs should pay most
: "${PC_METHODS:=ours-escnn,ours-e3nn,e3nn}"  # + escnn when its R3PointConv runs on the device (part env)
: "${PC_COMPILE_METHODS:=ours-escnn,ours-e3nn,e3nn}"
: "${PC_REPEATS:=5}"
: "${NBODY_ARGS:=--preset full --kernel-basis 0 16 --steps 10 --rounds 3}"
: "${NBODY_COMPILE_ARGS:=--preset full --kernel-basis 16 --steps 10 --rounds 3 --compile --compile-mode reduce-overhead}"
: "${QM9_ARGS:=--sizes 1500 --n-test 200 --budget 25}"
: "${PARTS:=install env pc pc-large nbody qm9 pc-compile nbody-compile}"
declare -A T=([install]=${T_INSTALL:-90} [env]=${T_ENV:-90} [pc]=${T_PC:-100} [pc-large]=${T_PC_LARGE:-120}
  [nbody]=${T_NBODY:-75} [qm9]=${T_QM9:-90} [pc-compile]=${T_PC_COMPILE:-150} [nbody-compile]=${T_NBODY_COMPILE:-120})

say() { echo "$*" | tee -a "$LOG"; }

# run_part NAME CMD...: CMD under min(T[NAME], seconds left - 15), output tee'd into the log; its status
# and its table lines (and lines naming failures) go to the summary
run_part() {
  local name=$1 left limit rc t0
  shift
  case " $PARTS " in *" $name "*) ;; *) return 0 ;; esac
  left=$((TOTAL - ($(date +%s) - START) - 15))
  limit=${T[$name]}
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 10 ]; then
    say "== $name: skipped (its limit would be ${limit}s: ${left}s left of TOTAL=${TOTAL}, T[$name]=${T[$name]})"
    echo "## $name: skipped, no time left" >>"$SUMMARY"
    return 0
  fi
  say "== $name (timeout ${limit}s): $*"
  t0=$(date +%s)
  # through bash -c: a part may be one of the exported functions below
  timeout -k 5 "$limit" bash -c '"$@"' _ "$@" 2>&1 | tee "$OUT/part.txt" >>"$LOG"
  rc=${PIPESTATUS[0]}
  local what="ok"
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && what="TIMED OUT"
  [ "$rc" != 0 ] && [ "$what" = ok ] && what="FAILED (exit $rc)"
  say "== $name: $what after $(($(date +%s) - t0))s"
  {
    echo "## $name: $what, $(($(date +%s) - t0)) s"
    grep -E '^\||^(installed|optional|py3nj|python|GPU|escnn|backends|ours|N-body|n_train|device|compiling|contraction|torch |homo)|[Ee]rror|failed|compiled' \
      "$OUT/part.txt" | grep -v -i -E 'warn|^[EWI][0-9]{4} ' | cut -c1-220
    [ "$what" != ok ] && tail -n 5 "$OUT/part.txt" | cut -c1-220
    echo
  } >>"$SUMMARY"
  rm -f "$OUT/part.txt"
  return 0
}

install() {  # offline: the wheels into $SITE (writable: escnn caches its bases in its own folder)
  rm -rf "$SITE"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    && { "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/optional/*.whl \
      || echo "optional wheels (py3nj) not installed: escnn computes SO(3) Clebsch-Gordan coefficients numerically"; } \
    && mkdir -p /tmp/qm9 && cp -r .whl/data/qm9/raw /tmp/qm9/ \
    && echo "installed: $(cd "$SITE" && ls -d ./*.dist-info | tr '\n' ' ')"
}

env_report() {
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PYTHON" - "$DEVICE" <<'EOF'
import sys, time, platform
import numpy, torch
dev = torch.device(sys.argv[1])
print(f"python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}")
if dev.type == "cuda":
    print(f"GPU: {torch.cuda.get_device_name(dev)}, CUDA {torch.version.cuda}")
import e3nn, escnn, steerable as st
import importlib.util
print(f"escnn {escnn.__version__} from {escnn.__file__}, e3nn {e3nn.__version__}")
print("py3nj:", "installed" if importlib.util.find_spec("py3nj") else "missing (escnn: numerical Clebsch-Gordan)")
print("backends:", ", ".join(f"{b.name} ({'ok' if b.available else 'unavailable'})" for b in st.registry.list_backends()))
t = time.perf_counter()
G = st.group("SO(3)", backend="escnn")
f = st.FieldType(G, [G.irrep(l) for l in range(2) for _ in range(4)])
conv = st.PointConv(f, f, max_radius=2.0).to(dev)
x, pos = torch.randn(64, f.size, device=dev), torch.randn(64, 3, device=dev)
ei = torch.randint(0, 64, (2, 512), device=dev)
conv(x, pos, ei).sum().backward()
print(f"ours-escnn on {dev}: fwd+bwd ran (build and first call {time.perf_counter() - t:.1f} s)")
sys.path.insert(0, "benchmarks")
import point_conv
try:
    mod, run = point_conv.build_escnn(2, 1)
    mod.to(dev)
    run(torch.randn(64, 8, device=dev), pos, ei).sum().backward()
    print("escnn R3PointConv on the device: runs")
    open("/tmp/escnn_baseline_ok", "w").close()
except Exception as exc:
    print(f"escnn R3PointConv on the device: failed: {type(exc).__name__}: {str(exc)[:200]}")
EOF
}

pc_large() {
  local c
  for c in $PC_LARGE_CONFIGS; do
    "$PYTHON" benchmarks/point_conv.py --device "$DEVICE" --repeats "$PC_REPEATS" --methods "$PC_METHODS" --configs "$c"
  done
}

export -f install env_report pc_large
export PYTHON SITE DEVICE PC_LARGE_CONFIGS PC_METHODS PC_REPEATS
say "device_check: DEVICE=$DEVICE SMALL=$SMALL TOTAL=${TOTAL}s PARTS='$PARTS' ($(date -u +%FT%TZ))"
run_part install install
export PYTHONPATH=$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}
rm -f /tmp/escnn_baseline_ok
run_part env env_report
methods=$PC_METHODS
[ -e /tmp/escnn_baseline_ok ] && methods=$methods,escnn
PC=("$PYTHON" benchmarks/point_conv.py --device "$DEVICE" --repeats "$PC_REPEATS")
# shellcheck disable=SC2086  # the config lists are word lists
run_part pc "${PC[@]}" --methods "$methods" --configs $PC_CONFIGS
# one process per size, smallest first: a timeout at 1M edges keeps the tables of the smaller ones
# (escnn's R3PointConv, a d x d kernel per edge, only at the default sizes)
run_part pc-large pc_large
# shellcheck disable=SC2086
run_part nbody "$PYTHON" benchmarks/nbody_throughput.py --device "$DEVICE" $NBODY_ARGS
# shellcheck disable=SC2086
run_part qm9 "$PYTHON" benchmarks/qm9_budget.py --device "$DEVICE" --source pyg --root /tmp/qm9 --models ours schnet $QM9_ARGS
# shellcheck disable=SC2086
run_part pc-compile "${PC[@]}" --methods "$PC_COMPILE_METHODS" --configs $PC_COMPILE_CONFIGS \
  --compile reduce-overhead --compile-methods "$PC_COMPILE_METHODS"
# shellcheck disable=SC2086
run_part nbody-compile "$PYTHON" benchmarks/nbody_throughput.py --device "$DEVICE" $NBODY_COMPILE_ARGS
say "device_check: done in $(($(date +%s) - START))s; summary:"
cat "$SUMMARY"

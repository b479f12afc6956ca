# Sourced by the device visits (gpu-check, cores-check): $OUT, a step clock, TVM unpacked from its
# pieces (unless this Python already has it: a run here, where the visit is tried first), the project
# as an installed package, and $CLI / $MODEL / $LOGS; the caller sets CHECK (the log's name).
REPO=$PWD
OUT=$(realpath -m "${OUT:-runs/$CHECK}")
SITE=/tmp/site
mkdir -p "$OUT" "$SITE"
exec > >(tee "$OUT/$CHECK.log") 2>&1
t0=$(date +%s)
step() { echo "== $(( $(date +%s) - t0 )) s: $*"; }

if python3 -c "import tvm, alexnet_tvm" 2>/dev/null; then
  step "TVM and the project are installed here: nothing to unpack"
  CLI=(python3 -m alexnet_tvm.cli.main)
else
  step "unpack TVM"
  parts=()
  for d in "${@:-.gpu/a}"; do parts+=("$d"/site.tar.xz.part-*); done
  mapfile -t parts < <(printf '%s\n' "${parts[@]}" | awk -F/ '{print $NF "\t" $0}' | sort | cut -f2)
  cat "${parts[@]}" | tar xJ -C "$SITE" || { echo "error: cannot unpack ${parts[*]}"; exit 2; }
  # the project as a wheel built here (pure Python): its metadata pins Python 3.11, the machine has 3.12
  python3 -m zipfile -e "$REPO"/.gpu/whl/alexnet_tvm-*.whl "$SITE/pkg" || { echo "error: cannot unpack the project"; exit 2; }
  export PYTHONPATH="$SITE/pkg:$SITE"
  CLI=(python3 -P -m alexnet_tvm.cli.main)  # -P: the installed package, not the checkout's alexnet_tvm/
fi
export PYTHONUNBUFFERED=1
MODEL=/tmp/alexnet1000.pt
LOGS=$REPO/tuning_logs
# from outside the checkout: MetaSchedule's worker processes put their working directory first on
# sys.path, and the checkout's alexnet_tvm/ (without model/, compile/, runtime/ mapped in) would win
cd "$SITE" || exit 2

#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target for a bounded time, then prints,
# per target, the executions, the coverage (libFuzzer's `cov:` edges and
# `ft:` features) and the crashes found.
#
#   scripts/fuzz.sh [seconds-per-target] [target ...]    (default 60 s, every target)
#
# cargo-fuzz (pinned) is installed once into the git-ignored .local; the
# targets build with the nightly toolchain when one is installed, else on
# the stable one with RUSTC_BOOTSTRAP=1. Everything built or found lands
# under $CARGO_TARGET_DIR/fuzz (default target/fuzz): one target directory
# shared by the fuzz crates, each target's corpus (kept between runs,
# seeded from events/) and its artifacts (crashing inputs: rerun one with
# `cargo fuzz run --fuzz-dir fuzz/<crate> <target> <file>`). Not part of
# `make test`: the entry points' property tests run there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-60}"
shift || true
CARGO_FUZZ_VERSION=0.13.2
TOOLS="$ROOT/.local/cargo-fuzz"
if [[ ! -x "$TOOLS/bin/cargo-fuzz" ]] || ! "$TOOLS/bin/cargo-fuzz" --version | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS" >&2
  cargo install --quiet --locked --root "$TOOLS" --version "$CARGO_FUZZ_VERSION" cargo-fuzz >&2
fi
export PATH="$TOOLS/bin:$PATH"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  CARGO=(cargo +nightly)
else
  echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
  CARGO=(cargo)
fi
WORK="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz"
mkdir -p "$WORK"

# crate:target pairs, each crate a cargo-fuzz crate in fuzz/.
ALL=(
  authorizer:event_and_caller authorizer:handle_and_render
  ingest:body ingest:api
  log-processor:decode_and_parse log-processor:kinesis
  quota-sync:stream_and_items cli:plan_file lambda:env
)
if [[ $# -gt 0 ]]; then
  WANTED=()
  for t in "$@"; do
    for pair in "${ALL[@]}"; do [[ "${pair#*:}" == "$t" || "$pair" == "$t" ]] && WANTED+=("$pair"); done
  done
else
  WANTED=("${ALL[@]}")
fi

# seed <target> <name> <mode byte, or -> <file>: a corpus seed, the file's
# bytes behind the entry's mode byte (for entries whose first byte picks a mode).
seed() {
  local dir="$WORK/seeds/$1" out
  mkdir -p "$dir"
  out="$dir/$2"
  if [[ "$3" == "-" ]]; then cp "$4" "$out"; else { printf "\\x$3"; cat "$4"; } >"$out"; fi
}
seeds() {
  rm -rf "$WORK/seeds"
  local f n=0
  for f in events/authorizer/*.json events/authorizer/aws/*.json; do
    n=$((n + 1))
    seed event_and_caller "a$n" - "$f"
    seed handle_and_render "a$n" - "$f"
  done
  for f in events/ingest/*.json; do
    # The body of an API Gateway event, else the file.
    python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); sys.stdout.write(e.get("body") or "")' "$f" >"$WORK/body.tmp" 2>/dev/null || true
    [[ -s "$WORK/body.tmp" ]] && seed body "$(basename "$f")" - "$WORK/body.tmp"
  done
  printf 'GET\n/prod/v1/usage\nidentity=key:k_0123456789abcdef\nmeter=requests\nfrom=2026-11-01\nto=2026-11-30\nlimit=5\nnext=ZGF5IzIwMjYtMTEtMTAjfg\n' >"$WORK/api.tmp"
  seed api usage - "$WORK/api.tmp"
  printf 'GET\n/v1/usage/top\nmeter=requests\nperiod=2026-11\nlimit=10\n' >"$WORK/api.tmp"
  seed api top - "$WORK/api.tmp"
  for f in events/log-processor/*.json; do
    seed decode_and_parse "$(basename "$f")" 02 "$f"
    seed kinesis "$(basename "$f")" 00 "$f"
  done
  printf '49590338271490256608559692538361571095\n49590338271490256608559692538361571096' >"$WORK/seq.tmp"
  seed kinesis seq 02 "$WORK/seq.tmp"
  for f in events/quota-sync/*.json; do seed stream_and_items "$(basename "$f")" 00 "$f"; done
  printf '{"pk":{"S":"requests#key:k_0123456789abcdef"},"sk":{"S":"month#2026-11#local-a"},"n":{"N":"40"},"d21":{"N":"40"},"agg":{"S":"count"}}' >"$WORK/item.tmp"
  seed stream_and_items item 01 "$WORK/item.tmp"
  printf '{"pk":{"S":"block#key:k_0123456789abcdef"},"blk:requests#day#2026-11-21":{"M":{"limit":{"N":"10"},"used":{"N":"12"}}}}' >"$WORK/block.tmp"
  seed stream_and_items block 02 "$WORK/block.tmp"
  printf -- '- {name: free, limits: [{meter: requests, window: day, limit: 100}]}\n- {name: pro, overage: soft, failure: open}\n' >"$WORK/plans.tmp"
  seed plan_file yaml 01 "$WORK/plans.tmp"
  printf '{"name":"anonymous","limits":[{"meter":"requests","window":"hour","limit":60}]}' >"$WORK/plans.tmp"
  seed plan_file json 00 "$WORK/plans.tmp"
  # Variable 30 is TOLLGATE_REGION, 27 TOLLGATE_PEER_REGIONS, 38 TOLLGATE_WINDOWS (tollgate_fuzz::env::VARS).
  printf '\x1elocal-a\n\x1blocal-b,local-c\n\x26day,month\n' >"$WORK/env.tmp"
  seed env regions - "$WORK/env.tmp"
  rm -f "$WORK"/*.tmp
}
seeds

# The workspace's lock file, so the fuzz crates build the versions tested.
for pair in "${WANTED[@]}"; do cp Cargo.lock "fuzz/${pair%%:*}/Cargo.lock"; done

echo "fuzz: building ${#WANTED[@]} targets" >&2
for pair in "${WANTED[@]}"; do
  "${CARGO[@]}" fuzz build --fuzz-dir "fuzz/${pair%%:*}" --target-dir "$WORK/build" "${pair#*:}" >&2
done

SUMMARY=()
status=0
for pair in "${WANTED[@]}"; do
  crate="${pair%%:*}" target="${pair#*:}"
  corpus="$WORK/corpus/$target" artifacts="$WORK/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  log="$WORK/$target.log"
  echo "fuzz: running $target for ${SECONDS_PER_TARGET}s (log: $log)" >&2
  before=$(find "$artifacts" -type f | wc -l)
  set +e
  "${CARGO[@]}" fuzz run --fuzz-dir "fuzz/$crate" --target-dir "$WORK/build" "$target" \
    "$corpus" "$WORK/seeds/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  set -e
  after=$(find "$artifacts" -type f | wc -l)
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | awk '{print $2}')
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | awk '{print $2}')
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" | awk '{print $2}')
  crashes=$((after - before))
  [[ $rc -ne 0 || $crashes -ne 0 ]] && status=1
  SUMMARY+=("$(printf '%-18s %12s %7s %7s %10s %8s %4s' "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes" "$rc")")
done
printf '%-18s %12s %7s %7s %10s %8s %4s\n' target executions cov ft corpus crashes rc
printf '%s\n' "${SUMMARY[@]}"
echo "(${SECONDS_PER_TARGET}s per target; crashing inputs in $WORK/artifacts/<target>/)"
exit $status

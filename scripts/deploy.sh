#!/usr/bin/env bash
# `make deploy REGIONS="eu-central-1 us-east-1 ap-southeast-2"`: one stack per
# region, built once, with the same architecture, stage and peer list in every
# region (each region's peers are the others).
#
#   scripts/deploy.sh --regions "R1 R2 ..." [--stage prod] [--arch arm64|x86_64]
#                     [--backend-url URL] [--param Key=Value ...]
#                     [--config samconfig.toml] [--dry-run] [--plan]
#
# It writes one SAM config-env per region into the config file (default
# samconfig.toml: `sam deploy --config-env <region>` redeploys one region
# alone), runs `sam build` once, then `sam deploy` per region.
#   --dry-run  creates each region's change set and prints it, executes none
#              (`sam deploy --no-execute-changeset`).
#   --plan     runs nothing: writes the config file and prints the commands
#              it would run, one per line (make test checks them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGIONS=""
STAGE="prod"
ARCH="arm64"
BACKEND_URL=""
CONFIG="$ROOT/samconfig.toml"
DRY_RUN=0
PLAN=0
PARAMS=()

die() { echo "deploy: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --regions) REGIONS="${2:-}"; shift 2 ;;
    --stage) STAGE="${2:-}"; shift 2 ;;
    --arch) ARCH="${2:-}"; shift 2 ;;
    --backend-url) BACKEND_URL="${2:-}"; shift 2 ;;
    --param) PARAMS+=("${2:-}"); shift 2 ;;
    --config) CONFIG="${2:-}"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --plan) PLAN=1; shift ;;
    *) die "unknown argument $1 (see the comment at the top of $0)" ;;
  esac
done

read -r -a REGION_LIST <<<"$(echo "$REGIONS" | tr ',' ' ')"
[[ ${#REGION_LIST[@]} -gt 0 ]] || die 'name the regions: REGIONS="eu-central-1 us-east-1"'
declare -A SEEN=()
for r in "${REGION_LIST[@]}"; do
  [[ "$r" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]] || die "not a region name: $r"
  [[ -z "${SEEN[$r]:-}" ]] || die "region $r is listed twice"
  SEEN[$r]=1
done
[[ "$STAGE" =~ ^[a-z0-9-]{1,20}$ ]] || die "--stage must be 1 to 20 of a-z, 0-9 and - (the template's StageName)"
[[ "$ARCH" == arm64 || "$ARCH" == x86_64 ]] || die "--arch is arm64 or x86_64"
for p in "${PARAMS[@]}"; do
  [[ "$p" =~ ^[A-Za-z0-9]+=[^[:space:]\"]*$ ]] || die "--param takes Key=Value without spaces or quotes: $p"
  case "${p%%=*}" in
    StageName|Architecture|PeerRegions|BackendUrl) die "${p%%=*} is set by this script for every region" ;;
  esac
done

STACK="tollgate-$STAGE"

# The other regions of the deployment, comma-separated ("none" for one region).
peers_of() {
  local me="$1" out=""
  for r in "${REGION_LIST[@]}"; do
    [[ "$r" == "$me" ]] && continue
    out="${out:+$out,}$r"
  done
  echo "${out:-none}"
}

overrides_of() {
  local region="$1"
  local o="StageName=$STAGE Architecture=$ARCH PeerRegions=$(peers_of "$region")"
  [[ -n "$BACKEND_URL" ]] && o="$o BackendUrl=$BACKEND_URL"
  for p in "${PARAMS[@]}"; do o="$o $p"; done
  echo "$o"
}

write_config() {
  {
    echo "# Written by scripts/deploy.sh: one config-env per region of the deployment."
    echo "# Redeploy one region alone with: sam deploy --config-env <region>"
    echo "version = 0.1"
    echo
    echo "[default.build.parameters]"
    echo "parameter_overrides = \"Architecture=$ARCH\""
    for r in "${REGION_LIST[@]}"; do
      echo
      echo "[$r.deploy.parameters]"
      echo "stack_name = \"$STACK\""
      echo "region = \"$r\""
      echo "resolve_s3 = true"
      echo "capabilities = \"CAPABILITY_IAM\""
      echo "confirm_changeset = false"
      echo "fail_on_empty_changeset = false"
      echo "parameter_overrides = \"$(overrides_of "$r")\""
    done
  } >"$CONFIG"
}

write_config

COMMANDS=("sam build --config-file $CONFIG --parameter-overrides Architecture=$ARCH")
for r in "${REGION_LIST[@]}"; do
  cmd="sam deploy --config-file $CONFIG --config-env $r"
  [[ $DRY_RUN == 1 ]] && cmd="$cmd --no-execute-changeset"
  COMMANDS+=("$cmd")
done

if [[ $PLAN == 1 ]]; then
  printf '%s\n' "${COMMANDS[@]}"
  exit 0
fi

command -v sam >/dev/null 2>&1 || PATH="$("$ROOT/scripts/tools.sh"):$PATH"
export SAM_CLI_TELEMETRY=0
cd "$ROOT"
for cmd in "${COMMANDS[@]}"; do
  echo "==> $cmd" >&2
  # Word splitting is intended: the commands hold no quoted arguments.
  # shellcheck disable=SC2086
  $cmd
done
if [[ $DRY_RUN == 1 ]]; then
  echo "deploy: change sets created in ${REGION_LIST[*]}, none executed" >&2
else
  echo "deploy: stack $STACK deployed in ${REGION_LIST[*]}; now put plans and keys with: tollgate --stage $STAGE --region <r> ..." >&2
fi

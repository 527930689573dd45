#!/usr/bin/env bash
# Installs the Python-packaged tools (cargo-lambda, aws-sam-cli, cfn-lint) and
# the CloudEvents SDK the ingest tests build requests with
# into the git-ignored .local/venv, once. Prints the venv's bin folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.local/venv"
# Pinned, so every machine gets the same tools.
PACKAGES=("cargo-lambda==1.9.2" "aws-sam-cli==1.170.0" "cfn-lint==1.58.0" "cloudevents==2.2.0")
STAMP="$VENV/.installed-$(echo "${PACKAGES[*]}" | cksum | cut -d' ' -f1)"
if [[ ! -f "$STAMP" ]]; then
  echo "tools: installing ${PACKAGES[*]} into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
  touch "$STAMP"
fi
echo "$VENV/bin"

#!/usr/bin/env bash
# `make demo`: the main job, offline, on this machine's own interpreters.
# keygen -> bundle (--from-prefix, pyenv builds) -> verify -> inspect -> install -> run.
set -euo pipefail
PYBUNDLE="${PYBUNDLE:-pybundle}"
DEMO_DIR="${DEMO_DIR:-demo}"
mkdir -p "$DEMO_DIR"
DEMO_DIR="$(cd "$DEMO_DIR" && pwd)"

root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
prefixes=()
for minor in 3.12 3.13; do
  best="$(ls -d "$root"/versions/"$minor".* 2>/dev/null | grep -E '/[0-9]+\.[0-9]+\.[0-9]+$' | sort -V | tail -n 1 || true)"
  [ -n "$best" ] && prefixes+=(--from-prefix "$best")
done
if [ ${#prefixes[@]} -eq 0 ]; then
  prefixes=(--from-prefix "$(python3 -c 'import sys; print(sys.base_prefix)')")
fi

step() { printf '\n== %s\n' "$*"; }
# keep the demo's trust store and serial record out of yours
export XDG_CONFIG_HOME="$DEMO_DIR/config" XDG_STATE_HOME="$DEMO_DIR/state"

step "keygen"
"$PYBUNDLE" keygen --unencrypted --secret-key "$DEMO_DIR/keys/ops.key" \
  --public-key "$DEMO_DIR/keys/ops.pub" --force

step "bundle ${prefixes[*]}"
t0=$(date +%s.%N)
"$PYBUNDLE" bundle "${prefixes[@]}" --prefix-site-packages pip \
  --sign-key "$DEMO_DIR/keys/ops.key" -o "$DEMO_DIR/py.pybundle" --force
t1=$(date +%s.%N)

step "verify"
"$PYBUNDLE" verify "$DEMO_DIR/py.pybundle" --trusted-key "$DEMO_DIR/keys/ops.pub"
t2=$(date +%s.%N)

step "inspect"
"$PYBUNDLE" inspect "$DEMO_DIR/py.pybundle"

step "install"
t3=$(date +%s.%N)
"$PYBUNDLE" install --from "$DEMO_DIR/py.pybundle" --trusted-key "$DEMO_DIR/keys/ops.pub" \
  --install-dir "$DEMO_DIR/python" --force
t4=$(date +%s.%N)

step "run the installed interpreters"
for py in "$DEMO_DIR"/python/*/bin/python3; do
  "$py" -c 'import ssl, sqlite3, sys, sysconfig; print(sys.version.split()[0], sys.prefix, "LIBDIR=" + sysconfig.get_config_var("LIBDIR"))'
done

step "timings"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" 'BEGIN {
  printf "bundle  %.2f s\nverify  %.2f s\ninstall %.2f s\n", b - a, c - b, e - d }'

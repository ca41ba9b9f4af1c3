#!/usr/bin/env bash
# `make run`: the daemon on this machine, with no cluster and no server to install.
# Turns examples-repo/ into a local git repository (once), writes a config for it (once), and
# starts `reconciler run` with the local backend and an embedded SQLite database, all under .run/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-.run}
PORT=${PORT:-8080}
INTERVAL=${INTERVAL:-10}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
REPO="$RUN_DIR/examples-repo"
CONFIG="$RUN_DIR/reconciler.yaml"

if [ ! -d "$REPO/.git" ]; then
  echo "creating a git repository from examples-repo/ in $REPO"
  rm -rf "$REPO"
  cp -r examples-repo "$REPO"
  git -C "$REPO" init -q -b main
  git -C "$REPO" add -A
  git -C "$REPO" -c user.name=reconciler -c user.email=reconciler@localhost commit -q -m "Examples"
fi

if [ ! -f "$CONFIG" ]; then
  cat > "$CONFIG" <<YAML
# Written by \`make run\`; edit freely (see README.md, "Configuration").
repos:
  - name: examples
    url: file://$REPO
    branch: main
    interval: $INTERVAL
backend: local
database: sqlite:///$RUN_DIR/reconciler.db
data_dir: $RUN_DIR/data
server: {host: 127.0.0.1, port: $PORT}
# The examples are this repository's own: their runs keep your user (and find your python),
# even when you are root, whose default is to run them as nobody (README "Security model").
local: {run_as: $(id -un)}
log_level: info
log_format: console
YAML
fi

cat <<MSG
polyaxon-reconciler: watching $REPO (poll every ${INTERVAL}s), local backend, SQLite in $RUN_DIR
  dashboard: http://127.0.0.1:$PORT/   (API: http://127.0.0.1:$PORT/docs)
  runs:     .venv/bin/reconciler runs list --config $CONFIG
  logs:     .venv/bin/reconciler runs logs <name> --config $CONFIG
  change:   edit $REPO/ops/train.yaml, then: git -C $REPO commit -am "more epochs"
  health:   http://127.0.0.1:$PORT/healthz   metrics: http://127.0.0.1:$PORT/metrics
  stop:     Ctrl-C
MSG
exec .venv/bin/reconciler run --config "$CONFIG"

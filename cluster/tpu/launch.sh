#!/usr/bin/env bash
# Train on a Cloud TPU VM pod slice: create it, ship this repository, run
# `python -m mixer_ref.train` on every worker, follow the log, delete it.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: cluster/tpu/launch.sh [options] COMMAND...

Commands (run in the order given):
  create   create the TPU VM slice (--spot for a preemptible one)
  setup    copy the working tree to every worker, install it, mount the data bucket
  train    start python -m mixer_ref.train on every worker (JAX finds its peers itself)
  logs     follow worker 0's log (Ctrl-C stops following, not training)
  stop     SIGTERM training on every worker: it checkpoints and exits
  delete   delete the TPU VM slice
  all      create setup train

Options:
  --name NAME        TPU VM name                       (default: mixer)
  --zone ZONE        zone with quota for --type        (default: us-central2-b)
  --type TYPE        accelerator type, e.g. v4-128, v5litepod-256  (default: v4-128)
  --version VERSION  TPU VM runtime                    (default: tpu-ubuntu2204-base)
  --project PROJECT  Google Cloud project              (default: gcloud's)
  --spot             a Spot (preemptible) slice
  --config PATH      training config                   (default: cluster/configs/pretrain/mixer_b16_in1k.json)
  --workdir GS_PATH  gs:// work directory: checkpoints, config.json, metrics.jsonl
  --data GS_PATH     gs:// bucket path holding the shard directories, mounted at /mnt/data
  --set KEY=VALUE    extra training override (repeatable)
  --print-only       print every gcloud command instead of running it
  -h, --help         this help

Rerunning `train` with the same --workdir resumes from its latest checkpoint, also on a
new slice after a preemption: `launch.sh ... create setup train`.
EOF
}

NAME=mixer
ZONE=us-central2-b
TYPE=v4-128
VERSION=tpu-ubuntu2204-base
PROJECT=""
SPOT=false
CONFIG=cluster/configs/pretrain/mixer_b16_in1k.json
WORKDIR=""
DATA=""
PRINT_ONLY=false
OVERRIDES=()
COMMANDS=()

while (($#)); do
  case "$1" in
    --name) NAME=$2; shift 2 ;;
    --zone) ZONE=$2; shift 2 ;;
    --type) TYPE=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --project) PROJECT=$2; shift 2 ;;
    --spot) SPOT=true; shift ;;
    --config) CONFIG=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --set) OVERRIDES+=("$2"); shift 2 ;;
    --print-only) PRINT_ONLY=true; shift ;;
    -h | --help) usage; exit 0 ;;
    create | setup | train | logs | stop | delete) COMMANDS+=("$1"); shift ;;
    all) COMMANDS+=(create setup train); shift ;;
    *) echo "launch.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
((${#COMMANDS[@]})) || { usage >&2; exit 2; }

# Runs a command, or prints it (quoted where the shell needs it) with --print-only.
run() {
  if $PRINT_ONLY; then
    local words=() word
    for word in "$@"; do
      if [[ $word =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then words+=("$word"); else words+=("${word@Q}"); fi
    done
    printf '%s\n' "${words[*]}"
  else
    "$@"
  fi
}

GCLOUD=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE")
[[ -n $PROJECT ]] && WHERE+=(--project="$PROJECT")
REMOTE_DIR=mixer  # in each worker's home directory
LOG=train.log

on_all_workers() {
  run "${GCLOUD[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all --command="$1"
}

create() {
  local flags=(--accelerator-type="$TYPE" --version="$VERSION")
  $SPOT && flags+=(--spot)
  run "${GCLOUD[@]}" create "$NAME" "${WHERE[@]}" "${flags[@]}"
}

setup() {
  local tarball=${TMPDIR:-/tmp}/mixer-code-$$.tar.gz
  # Tracked and untracked files that git does not ignore: the working tree as it is.
  if $PRINT_ONLY; then
    echo "git ls-files -z --cached --others --exclude-standard | tar czf $tarball --null -T -"
  else
    git ls-files -z --cached --others --exclude-standard | tar czf "$tarball" --null -T -
  fi
  run "${GCLOUD[@]}" scp "$tarball" "$NAME:code.tar.gz" "${WHERE[@]}" --worker=all
  local install="rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar xzf code.tar.gz -C $REMOTE_DIR"
  install+=" && cd $REMOTE_DIR && python3 -m venv .venv"
  install+=" && .venv/bin/pip install -q -c requirements.txt 'jax[tpu]==0.10.2' -e '.[cluster]'"
  on_all_workers "$install"
  if [[ -n $DATA ]]; then
    local bucket=${DATA#gs://}
    local only_dir=${bucket#*/}
    bucket=${bucket%%/*}
    [[ $only_dir == "$bucket" ]] && only_dir=""
    # Cloud Storage FUSE: every host reads only the records of its share of each batch.
    local mount="sudo mkdir -p /mnt/data && sudo chmod 777 /mnt/data"
    mount+=" && (command -v gcsfuse >/dev/null || (curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo gpg --dearmor -o /usr/share/keyrings/cloud.google.gpg"
    mount+=" && echo 'deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt gcsfuse-jammy main' | sudo tee /etc/apt/sources.list.d/gcsfuse.list"
    mount+=" && sudo apt-get update -qq && sudo apt-get install -y -qq gcsfuse))"
    mount+=" && (mountpoint -q /mnt/data || gcsfuse --implicit-dirs -o ro${only_dir:+ --only-dir $only_dir} $bucket /mnt/data)"
    on_all_workers "$mount"
  fi
  $PRINT_ONLY || rm -f "$tarball"
}

train() {
  [[ $WORKDIR == gs://* ]] || { echo "launch.sh: --workdir must be a gs:// path" >&2; exit 2; }
  local args=(--config "$CONFIG" --workdir "$WORKDIR")
  ((${#OVERRIDES[@]})) && args+=(--set "${OVERRIDES[@]}")
  local quoted
  quoted=$(printf '%q ' "${args[@]}")
  # No --coordinator_address: on a TPU pod jax.distributed finds its peers itself.
  on_all_workers "cd $REMOTE_DIR && nohup .venv/bin/python -m mixer_ref.train $quoted> ~/$LOG 2>&1 & echo \$! > ~/train.pid"
}

logs() {
  run "${GCLOUD[@]}" ssh "$NAME" "${WHERE[@]}" --worker=0 --command="tail -n 100 -f ~/$LOG"
}

stop() {
  # shellcheck disable=SC2016  # expands on the workers
  on_all_workers 'kill -TERM "$(cat ~/train.pid)" || true'
}

delete() {
  run "${GCLOUD[@]}" delete "$NAME" "${WHERE[@]}" --quiet
}

for command in "${COMMANDS[@]}"; do
  "$command"
done

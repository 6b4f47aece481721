#!/usr/bin/env bash
# Run `python -m restreact.launch ARGS...` on every worker of a TPU VM pod at once (see launch/README.md).
# Each worker's restreact.launch then calls jax.distributed.initialize(), which finds the other workers itself.
set -euo pipefail

usage() {
  cat >&2 <<'USAGE'
usage: TPU_NAME=NAME ZONE=ZONE [PROJECT=ID] [REPO_DIR=~/restreact] [SETUP=1] [PYTHON=python3] [DRY_RUN=1] \
         launch/tpu_pod.sh RESTREACT_LAUNCH_ARGS...
  e.g. TPU_NAME=my-v5e-32 ZONE=us-west4-a launch/tpu_pod.sh --config=configs/gen2_xs.py --workdir=/mnt/bucket/gen2_xs

  TPU_NAME, ZONE  the TPU VM pod and its zone (required)
  PROJECT         the Google Cloud project (default: gcloud's configured one)
  REPO_DIR        the restreact checkout on every worker (default: ~/restreact)
  SETUP=1         first run `pip install -r requirements.txt -e ".[tpu]"` there (jax for TPU)
  PYTHON          the interpreter on the workers (default: python3)
  DRY_RUN=1       print the gcloud command instead of running it
USAGE
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  usage
  exit 0
fi
if [[ -z "${TPU_NAME:-}" || -z "${ZONE:-}" ]]; then
  echo "error: set TPU_NAME and ZONE" >&2
  usage
  exit 2
fi

# Quote for the workers' shell. A leading ~/ stays unquoted so that it expands to the worker's home.
quote() {
  if [[ "$1" == "~" ]]; then
    printf '~'
  elif [[ "$1" == "~/"* ]]; then
    printf '~/%q' "${1#"~/"}"
  else
    printf '%q' "$1"
  fi
}

repo="$(quote "${REPO_DIR:-~/restreact}")"
python="$(printf '%q' "${PYTHON:-python3}")"
remote="cd ${repo}"
if [[ "${SETUP:-0}" == "1" ]]; then
  remote+=" && ${python} -m pip install -r requirements.txt -e $(printf '%q' '.[tpu]')"
fi
remote+=" && exec ${python} -m restreact.launch"
for arg in "$@"; do
  remote+=" $(printf '%q' "$arg")"
done

cmd=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="$remote")
if [[ -n "${PROJECT:-}" ]]; then
  cmd+=(--project="$PROJECT")
fi

if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "${cmd[@]}"
  echo
else
  exec "${cmd[@]}"
fi

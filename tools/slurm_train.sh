#!/usr/bin/env bash
# Train on a Slurm partition, one task per GPU.
#   [GPUS=16] tools/slurm_train.sh PARTITION JOB_NAME CONFIG \
#       [tools/train.py options]
# GPUS (default 8) tasks in all, GPUS_PER_NODE (default 8) per node;
# SRUN_ARGS adds srun options. On CPU nodes set GPUS_PER_NODE=0 and
# GPUS to the number of processes (the backend is then gloo).

set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TASKS_PER_NODE=${TASKS_PER_NODE:-${GPUS_PER_NODE}}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    GRES="--gres=gpu:${GPUS_PER_NODE}"
    TASKS="--ntasks-per-node=${TASKS_PER_NODE}"
else
    GRES=""
    TASKS=""
fi

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    ${GRES} \
    --ntasks=${GPUS} \
    ${TASKS} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    python -u $(dirname "$0")/train.py ${CONFIG} \
    --launcher=slurm "${@:4}"

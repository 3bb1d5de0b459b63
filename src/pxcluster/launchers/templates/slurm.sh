#!/bin/bash
# pxcluster {{role}} job of profile {{profile}} (made by pxcluster; template: slurm.sh).
# Placeholders in double braces are filled in by pxcluster; everything else is plain bash.
#SBATCH --job-name={{job_name}}
#SBATCH --output={{output}}
{{directives}}

{{setup}}
export PXCLUSTER_LAUNCHER=slurm
export PXCLUSTER_JOB_ID="${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}"
export PXCLUSTER_ARRAY_INDEX="${SLURM_ARRAY_TASK_ID:-0}"
{{end_time}}
{{run}}

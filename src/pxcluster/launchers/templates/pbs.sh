#!/bin/bash
# pxcluster {{role}} job of profile {{profile}} (made by pxcluster; template: pbs.sh).
# Placeholders in double braces are filled in by pxcluster; everything else is plain bash.
#PBS -N {{job_name}}
#PBS -o {{output}}
#PBS -j oe
{{directives}}

{{setup}}
export PXCLUSTER_LAUNCHER=pbs
# Torque sets PBS_JOBID/PBS_ARRAYID, PBS Pro PBS_ARRAY_INDEX; Slurm's qsub wrapper neither
jobid="${PBS_JOBID:-${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}}"
export PXCLUSTER_JOB_ID="${jobid%%[[.]*}"
export PXCLUSTER_ARRAY_INDEX="${PBS_ARRAYID:-${PBS_ARRAY_INDEX:-${SLURM_ARRAY_TASK_ID:-0}}}"
{{end_time}}
{{run}}

#!/bin/bash
# pxcluster {{role}} job of profile {{profile}} (made by pxcluster; template: sge.sh).
# Placeholders in double braces are filled in by pxcluster; everything else is plain bash.
#$ -N {{job_name}}
#$ -S /bin/bash
#$ -o {{output}}
#$ -j y
#$ -cwd
{{directives}}

{{setup}}
export PXCLUSTER_LAUNCHER=sge
export PXCLUSTER_JOB_ID="$JOB_ID"
# SGE numbers array tasks from 1; pxcluster's indices start at 0
if [ "${SGE_TASK_ID:-undefined}" = undefined ]; then
    export PXCLUSTER_ARRAY_INDEX=0
else
    export PXCLUSTER_ARRAY_INDEX=$((SGE_TASK_ID - 1))
fi
{{end_time}}
{{run}}

#!/usr/bin/env bash
# Installs the real systems the test suite runs against: sshd, munge + Slurm (and the
# Torque-syntax qsub/qstat/qdel wrappers, unpacked privately because SGE ships a qsub too),
# Son of Grid Engine, Chromium (for the dashboard and notebook pages), and iproute2/util-linux
# for network-namespace "hosts". Idempotent; needs root and Debian's apt. Nothing is started
# here: the test fixtures in tests/services/ start each daemon and stop it again.
# MPI comes from PyPI wheels (see pyproject's test extra), not apt.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then
    echo "tests/services/install.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi
here=$(cd "$(dirname "$0")" && pwd)
prefix=${PXTEST_SERVICES_PREFIX:-/opt/pxcluster-test}

packages=(openssh-server openssh-client munge slurmctld slurmd slurm-client
          gridengine-master gridengine-exec gridengine-client
          libslurm-perl libslurmdb-perl libswitch-perl
          chromium iproute2 util-linux procps tmux curl)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    for p in gridengine-common gridengine-master gridengine-exec gridengine-client; do
        printf '%s shared/gridengineconfig boolean true\n%s shared/gridenginecell string default\n%s shared/gridenginemaster string localhost\n' "$p" "$p" "$p"
    done | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# PBS: Slurm's Torque wrappers, unpacked beside (not over) SGE's qsub.
if [ ! -x "$prefix/pbs/usr/bin/qsub" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && { apt-get download -q slurm-wlm-torque >/dev/null 2>&1 \
        || { apt-get update -q && apt-get download -q slurm-wlm-torque >/dev/null; }; })
    mkdir -p "$prefix/pbs"
    dpkg-deb -x "$tmp"/slurm-wlm-torque_*.deb "$prefix/pbs"
    rm -rf "$tmp"
fi
for b in sbatch salloc srun scontrol squeue scancel sinfo; do
    ln -sf "/usr/bin/$b" "$prefix/pbs/usr/bin/$b"
done
echo "test services installed (PBS wrappers in $prefix/pbs/usr/bin)"

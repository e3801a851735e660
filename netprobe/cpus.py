"""The CPU threads a compute command uses by default: the real cores this process may run on.

torch's own default is one thread per physical core of the machine, which oversubscribes a container limited
to fewer CPUs by its affinity mask or its cgroup quota (every OpenMP barrier then waits for a descheduled thread).
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # no affinity call on macOS and Windows
        return list(range(os.cpu_count() or 1))


def physical_cores(cpus, sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """Distinct cores among `cpus`: hyper-threads of one core count once (Linux sysfs; else every CPU counts)."""
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            return len(cpus)
    return len(cores)


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPUs a cgroup quota grants this process (docker --cpus, Kubernetes limits), or None without one."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]  # cgroup v2: "max 100000" is none
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()  # cgroup v1: -1 is none
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1") or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return int(quota) / int(period)


def cores() -> int:
    """The physical cores among the usable CPUs, within the cgroup quota (at least 1)."""
    threads = physical_cores(usable_cpus())
    quota = cpu_quota()
    if quota is not None:
        threads = min(threads, math.floor(quota))
    return max(1, threads)


MAX_THREADS = 1024  # --threads' bound; OpenMP runtimes crash (SIGSEGV) asked for 100,000


def default_threads() -> int:
    """OMP_NUM_THREADS when set (at most MAX_THREADS), else `cores()`."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return min(int(env), MAX_THREADS)
    return cores()


def bound_env_threads() -> None:
    """Lower OMP_NUM_THREADS to MAX_THREADS before torch starts its OpenMP runtime, which reads it once."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > MAX_THREADS:
        os.environ["OMP_NUM_THREADS"] = str(MAX_THREADS)

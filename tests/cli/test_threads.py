"""--threads and its default: OMP_NUM_THREADS, else the physical cores among the usable CPUs within a cgroup quota."""

import click
import pytest
import torch
from click.testing import CliRunner

from netprobe import cpus
from netprobe.cli.main import cli
from netprobe.cli.options import threads_option


def _topology(root, cores):
    """A fake sysfs: CPU i on core cores[i] of package 0."""
    for cpu, core in enumerate(cores):
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text("0\n")
        (topology / "core_id").write_text(f"{core}\n")
    return root


def test_hyperthreads_of_one_core_count_once(tmp_path):
    sysfs = _topology(tmp_path, [0, 1, 0, 1])  # 4 CPUs, 2 cores with 2 threads each
    assert cpus.physical_cores([0, 1, 2, 3], sysfs) == 2
    assert cpus.physical_cores([0, 2], sysfs) == 1  # an affinity mask of one core's two threads
    assert cpus.physical_cores([0, 1, 2], tmp_path / "none") == 3  # no sysfs: every CPU counts


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "150000 100000\n"}, 1.5),  # docker --cpus 1.5 (cgroup v2)
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_cgroup_quota(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpus.cpu_quota(tmp_path) == quota


@pytest.mark.parametrize("env, cores, quota, expected", [
    ("3", 8, None, 3),  # the user's OMP_NUM_THREADS wins
    ("", 8, None, 8),
    ("", 8, 1.5, 1),  # a quota of 1.5 CPUs: a second thread would be throttled half the time
    ("", 4, 0.5, 1),
])
def test_default_threads(monkeypatch, env, cores, quota, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    monkeypatch.setattr(cpus, "physical_cores", lambda cpus_: cores)
    monkeypatch.setattr(cpus, "cpu_quota", lambda: quota)
    assert cpus.default_threads() == expected


def test_option_sets_threads_for_the_run_and_restores_them(monkeypatch):
    seen = []

    @click.command()
    @threads_option
    def probe():
        seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    assert CliRunner().invoke(probe, ["--threads", "3"]).exit_code == 0
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert CliRunner().invoke(probe, []).exit_code == 0
    assert seen == [3, 2] and torch.get_num_threads() == before
    for bad in ("0", "99999999999999999999999"):  # torch takes an int32: a huge count must not reach it
        assert CliRunner().invoke(probe, ["--threads", bad]).exit_code == 2


@pytest.mark.parametrize("command", ["gradients", "train", "landscape", "lesion", "hessian", "depth", "report", "rf"])
def test_compute_commands_take_threads(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and "--threads N" in result.output


def test_depth_divides_the_default_among_its_jobs(monkeypatch, tmp_path):
    import netprobe.analysis.depth as depth

    seen = {}

    def run_study(study, out, *, threads, jobs, **kwargs):
        seen.update(threads=threads, jobs=jobs)
        raise KeyboardInterrupt

    monkeypatch.setattr(depth, "run_study", run_study)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    CliRunner().invoke(cli, ["depth", "--jobs", "2", "--quick", "-o", tmp_path / "d"])
    assert seen == {"threads": 2, "jobs": 2}


def test_cores_ignore_omp_num_threads(monkeypatch):
    # the depth study runs one process per core whatever each process's thread count
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(cpus, "physical_cores", lambda cpus_: 6)
    monkeypatch.setattr(cpus, "cpu_quota", lambda: 4.0)
    assert cpus.cores() == 4 and cpus.default_threads() == 1

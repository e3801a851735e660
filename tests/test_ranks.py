"""torchrun ranks: work shared out and put back in order, more ranks than work refused, a dead rank ends the others,
and lesion / hessian under two gloo ranks write the CSVs of one process."""

import os
import socket
import subprocess
import sys
import time

import pytest

from netprobe import ranks
from netprobe.errors import NetprobeError


def test_one_process_shares_everything_and_gathers_itself():
    assert ranks.world() == (0, 1) and ranks.is_main()
    assert ranks.share([1, 2, 3], "items") == [1, 2, 3]
    assert ranks.in_order(["a", "b"], 2) == ["a", "b"]


def test_more_ranks_than_work_is_one_line(monkeypatch):
    monkeypatch.setattr(ranks, "world", lambda: (1, 4))
    assert ranks.share(list("abcdefghi"), "items") == ["b", "f"]  # round-robin: items 1 and 5 of 9
    with pytest.raises(NetprobeError, match=r"^torchrun started 4 ranks for 3 deletions: start at most 3"):
        ranks.share([1, 2, 3], "deletions")


def test_depth_refuses_more_ranks_than_pairs(tmp_path):
    from netprobe.analysis.depth import Study, run_study
    from netprobe.analysis.depth.pair import Recipe

    study = Study(depths=(20,), variants=("plain", "residual"), recipe=Recipe(steps=1, width=1, every=1))
    with pytest.raises(NetprobeError, match="torchrun started 3 ranks for 2 pairs"):
        run_study(study, tmp_path / "s", rank=0, world=3)
    assert not (tmp_path / "s").exists()


WORKER = """
import os, sys, time
sys.path.insert(0, {root!r})
from netprobe import ranks
ranks.BEAT, ranks.PATIENCE = 0.2, 2.0
with ranks.process_group("cpu"):
    if ranks.world()[0] == 1:
        if sys.argv[1] == "killed":
            os._exit(3)  # as SIGKILL would: no word to the others
        raise RuntimeError("out of patience")
    ranks.barrier()  # rank 0 waits for a rank that will never come
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["killed", "failed"])
def test_a_dead_rank_ends_the_others_with_one_line(tmp_path, how):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=os.path.dirname(os.path.dirname(__file__))))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    procs = [subprocess.Popen([sys.executable, str(script), how], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    err0 = procs[0].communicate(timeout=60)[1]
    procs[1].communicate(timeout=60)
    assert procs[0].returncode == 1 and time.monotonic() - start < 30
    line = err0.strip().splitlines()
    assert len(line) == 1, err0
    want = "rank 1 has not answered for 2 s" if how == "killed" else "rank 1 failed (out of patience)"
    assert line[0].startswith(f"Error: rank 0: {want}")


def _torchrun(args, out, nproc):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)] if nproc > 1 else []
    done = subprocess.run([sys.executable, *launcher, "-m", "netprobe", *args, "--threads", "1", "--no-progress",
                           "-o", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def weights(tmp_path_factory, checkpoints):
    return checkpoints["residual"]


def test_lesion_under_two_ranks_writes_the_csvs_of_one_process(tmp_path, weights):
    args = ["lesion", "resnet20", "--weights", weights, "--samples", "8", "--random-sets", "2"]
    for n in (1, 2):
        _torchrun(args, tmp_path / f"r{n}", n)
    for name in ("single.csv", "blocks.csv", "sets.csv", "summary.csv"):
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes(), name


def test_hessian_under_two_ranks_writes_the_csvs_of_one_process(tmp_path, weights):
    args = ["hessian", "resnet20", "--weights", weights, "--samples", "16", "--batch-size", "8", "--top", "1",
            "--iters", "3", "--probes", "3", "--density", "--lanczos-steps", "3", "--density-runs", "2"]
    for n in (1, 2):
        _torchrun(args, tmp_path / f"r{n}", n)
    for name in ("hessian.csv", "density.csv"):
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes(), name
    assert not (tmp_path / "r2" / ".hessian-state.pt").exists()

"""netprobe summary vs torchinfo: wall time and peak memory, each run in a fresh subprocess.

    python benchmarks/bench_summary.py            netprobe vs torchinfo, fresh processes
    python benchmarks/bench_summary.py --peers    netprobe vs torchscan and a bare FlopCounterMode, same process
    python benchmarks/bench_summary.py --peers --cpu-time --repeats 5    the same by CPU time (a shared machine)

`--peers` times, in one process and after a warm-up of each tool, the analysis of every zoo model at its own
input plus MobileNetV2/V3-small (benchmarks/mobilenets.py), all built on the meta device: netprobe's
`summary`, torchscan's `crawl_module(..., device="meta")` and a forward pass of the meta model under
`FlopCounterMode` (counting only). Each figure is the best of --repeats; ratios are the peer's time over
netprobe's (above 1: netprobe is faster). On a loaded, shared machine the wall clock measures the other
processes as much as the tools: `--cpu-time` times each call by the process's CPU time instead.

Every measurement starts a new Python process so that peaks and one-time costs are honest; imports of torch,
pandas and the tool are done before the clock starts (they are the same for every tool) and reported apart.
`build` is making the model (netprobe on the meta device, torchinfo needs real weights on the CPU),
`analysis` is the summary call; `peak RSS` is the growth of the process's peak resident memory over the
post-import baseline. fvcore and ptflops are measured too when installed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

CASES = [("resnet152", 1, ("netprobe", "torchinfo")), ("vgg16", 32, ("netprobe", "torchinfo")),
         ("vgg16", 256, ("netprobe",))]
OPTIONAL = ("fvcore", "ptflops")

CHILD = r"""
import json, resource, sys, time
tool, name, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
import torch, pandas
import netprobe.zoo
if tool == "netprobe":
    from netprobe.zoo.loading import load_model
    from netprobe.analysis.counting.summary import summary
elif tool == "torchinfo":
    import torchinfo
elif tool == "fvcore":
    from fvcore.nn import FlopCountAnalysis
elif tool == "ptflops":
    from ptflops import get_model_complexity_info
torch.set_grad_enabled(False)
t1 = time.perf_counter()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
size = (batch, 3, 224, 224)
if tool == "netprobe":
    model = load_model(name).model
    t2 = time.perf_counter()
    macs = summary(model, size).totals.macs
else:
    model = netprobe.zoo.load(name).eval()
    t2 = time.perf_counter()
    if tool == "torchinfo":
        macs = torchinfo.summary(model, input_size=size, verbose=0).total_mult_adds
    elif tool == "fvcore":
        macs = FlopCountAnalysis(model, torch.zeros(size)).total()
    else:
        macs = get_model_complexity_info(model, size[1:], as_strings=False, print_per_layer_stat=False)[0] * batch
t3 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "analysis_s": t3 - t2,
                  "rss_mb": (peak - base) / 1024, "macs": int(macs)}))
"""


def measure(tool: str, name: str, batch: int) -> dict:
    """Run one tool on one case in a fresh interpreter and return its figures."""
    out = subprocess.run([sys.executable, "-c", CHILD, tool, name, str(batch)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    tools = [t for t in OPTIONAL if importlib.util.find_spec(t) is not None]
    header = f"{'model':<10} {'batch':>5} {'tool':<10} {'import s':>8} {'build s':>8} {'analysis s':>10} " \
             f"{'total s':>8} {'peak RSS MB':>11} {'MACs':>16}"
    print(header)
    print("-" * len(header))
    for name, batch, case_tools in CASES:
        for tool in (*case_tools, *(tools if batch == 1 else ())):
            r = measure(tool, name, batch)
            total = r["build_s"] + r["analysis_s"]
            print(f"{name:<10} {batch:>5} {tool:<10} {r['import_s']:>8.2f} {r['build_s']:>8.2f} "
                  f"{r['analysis_s']:>10.2f} {total:>8.2f} {r['rss_mb']:>11.1f} {r['macs']:>16,}")
    missing = [t for t in OPTIONAL if t not in tools]
    if missing:
        print(f"not installed, not measured: {', '.join(missing)}")


PEER_SKIP = ("resnet1202",)  # 1202 layers: minutes per repeat for the slowest peer on a shared machine


def _best(fn, repeats: int, clock) -> float:
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def _peer_cases():
    """(name, meta model builder, input size with the batch dimension) for the zoo and the MobileNets; every
    tensor on meta (the zoo's alexnet keeps a CPU constant, which a bare forward on meta refuses)."""
    import mobilenets

    from netprobe.analysis.counting.trace import meta_copy
    from netprobe.zoo import list_models, load, model_spec

    cases = [(n, lambda n=n: meta_copy(load(n)).eval(), (1, *model_spec(n).input_size)) for n in list_models()
             if n not in PEER_SKIP]
    mobile = [(f.__name__, lambda f=f: f().eval(), (1, 3, 224, 224))
              for f in (mobilenets.mobilenet_v2, mobilenets.mobilenet_v3_small)]
    return cases + mobile


def peers(repeats: int, cpu_time: bool = False) -> None:
    """netprobe summary vs torchscan and a bare FlopCounterMode forward, same process, ratios; `cpu_time`: timed by
    the process's CPU time (all of this work runs on one thread), which other processes on the machine do not
    inflate, instead of the wall clock."""
    import statistics
    import time

    import torch
    import torchscan
    from torch.utils.flop_counter import FlopCounterMode

    from netprobe.analysis.counting.summary import summary

    def flop_counter(model, size):
        with FlopCounterMode(display=False), torch.no_grad():
            model(torch.empty(size, device="meta"))

    tools = {"netprobe": lambda m, size: summary(m, size),
             "torchscan": lambda m, size: torchscan.crawl_module(m, size[1:], device="meta"),
             "flopcounter": flop_counter}
    warm = _peer_cases()[0]
    for tool in tools.values():  # first calls import sympy and friends: not part of any model's time
        tool(warm[1](), warm[2])
    print(f"{'model':<20} {'netprobe s':>10} {'torchscan s':>11} {'flopcounter s':>13} {'vs torchscan':>12} "
          f"{'vs flopcounter':>14}")
    ratios = {"torchscan": [], "flopcounter": []}
    for name, build, size in _peer_cases():
        model = build()
        t = {tool: _best(lambda: fn(model, size), repeats, time.process_time if cpu_time else time.perf_counter)
             for tool, fn in tools.items()}
        for peer in ratios:
            ratios[peer].append(t[peer] / t["netprobe"])
        print(f"{name:<20} {t['netprobe']:>10.3f} {t['torchscan']:>11.3f} {t['flopcounter']:>13.3f} "
              f"{ratios['torchscan'][-1]:>11.2f}x {ratios['flopcounter'][-1]:>13.2f}x", flush=True)
    for peer, values in ratios.items():
        print(f"vs {peer}: median {statistics.median(values):.2f}x, min {min(values):.2f}x, "
              f"faster on {sum(v > 1 for v in values)}/{len(values)}")


if __name__ == "__main__":
    if "--peers" in sys.argv:
        repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 3
        peers(repeats, "--cpu-time" in sys.argv)
    else:
        main()

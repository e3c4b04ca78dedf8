"""The inference timing protocol: one warm-up pass, then timed passes of
the same work (median), with this process's CPU time, the machine's CPU time
used by other processes, optional waits for idle CPUs, and the positions the
encoder computes (a forward pre-hook)."""
import os
import statistics
import time
from typing import Callable, Dict, Tuple


class PositionCounter:
    """A forward pre-hook for an ``XLMRobertaModel``: counts the positions
    (rows × padded length) it computes and how many of them are padding."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.rows = 0
        self.positions = 0
        self.real = 0
        self.max_len = 0

    def __call__(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        self.calls += 1
        self.rows += int(ids.shape[0])
        self.positions += int(ids.numel())
        self.real += int(mask.sum()) if mask is not None else int(ids.numel())
        self.max_len = max(self.max_len, int(ids.shape[1]))

    def summary(self) -> Dict:
        return {
            "forward_calls": self.calls,
            "rows": self.rows,
            "positions": self.positions,
            "real_positions": self.real,
            "padding_share": 1 - self.real / self.positions if self.positions else None,
            "max_len": self.max_len,
        }


def find_encoder(root):
    """The ``XLMRobertaModel`` inside a torch module (or the module itself)."""
    from transformers import XLMRobertaModel

    for module in root.modules():
        if isinstance(module, XLMRobertaModel):
            return module
    raise ValueError(f"No XLMRobertaModel in {type(root).__name__}")


def cpu_times() -> Tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as file_:
        fields = [int(x) for x in file_.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # up to steal; guest time is already in user
    return (total - idle) / tick, total / tick


def wait_for_idle(max_wait: float, busy_below: float = 0.15, sample: float = 2.0) -> float:
    """Wait (at most ``max_wait`` seconds) until the machine's CPUs are less
    than ``busy_below`` busy over ``sample`` seconds, so that a timed run
    doesn't start while other jobs hold the CPUs it needs. Returns the time waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait:
        busy_start, total_start = cpu_times()
        time.sleep(sample)
        busy_end, total_end = cpu_times()
        if (busy_end - busy_start) / max(total_end - total_start, 1e-9) < busy_below:
            break
    return time.perf_counter() - start


def timed_passes(
    run: Callable[[], Dict], counter: "PositionCounter", runs: int, wait_idle: float, threads: int
) -> Dict:
    """One warm-up call of ``run``, then ``runs`` timed calls: wall and CPU
    time of each, the other processes' share of the machine's CPU time, the
    positions ``counter`` saw (per pass, so those of the last), and the
    median wall time. With ``wait_idle``, wait up to that many seconds for
    the CPUs to be idle enough before each pass: the other jobs must leave
    this process's ``threads`` their cores. Every pass must return what the
    warm-up returned (``check``)."""
    result: Dict = {}
    busy_below = max(0.15, 1 - threads / (os.cpu_count() or 1) - 0.1)
    waits = [wait_for_idle(wait_idle, busy_below)] if wait_idle else []
    start = time.perf_counter()
    result["check"] = run()
    result["warmup_s"] = time.perf_counter() - start
    walls, cpus, others = [], [], []
    for _ in range(runs):
        if wait_idle:
            waits.append(wait_for_idle(wait_idle, busy_below))
        counter.reset()
        busy_start, total_start = cpu_times()
        start, cpu_start = time.perf_counter(), time.process_time()
        check = run()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu_start)
        busy_end, total_end = cpu_times()
        # Machine CPU time used by other processes, as a share of all CPU time.
        others_busy = max(0.0, (busy_end - busy_start) - cpus[-1])
        others.append(others_busy / max(total_end - total_start, 1e-9))
    assert check == result["check"], (check, result["check"])
    result["positions"] = counter.summary()
    result["runs_s"] = walls
    result["cpu_s"] = cpus
    result["other_processes_cpu_share"] = others
    result["idle_waits_s"] = waits
    result["median_s"] = statistics.median(walls)
    return result

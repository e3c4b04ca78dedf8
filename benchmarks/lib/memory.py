"""Resident memory of this process and its peak (Linux).

``VmHWM`` (``/proc/self/status``) is the peak the benchmarks report:
``ru_maxrss`` also counts the RSS a forked child had when it exec()ed, i.e.
that of the driver that started it. Writing ``5`` to
``/proc/self/clear_refs`` resets ``VmHWM`` to the current RSS.

Standard library only: ``train_hooks`` (loaded inside ``spacy train``) and
the worker processes import it.
"""
import resource
from typing import Dict

# Where a process that loads train_hooks.py writes its peak memory at exit.
MEM_ENV = "SPACY_XLMR_BENCH_MEM_DIR"


def proc_status_kb(*keys: str) -> Dict[str, int]:
    """The given fields of ``/proc/self/status`` (e.g. VmRSS, VmHWM), in kB."""
    values = {}
    with open("/proc/self/status", encoding="utf8") as file_:
        for line in file_:
            name, _, rest = line.partition(":")
            if name in keys:
                values[name] = int(rest.split()[0])
    return values


def memory_mb() -> Dict[str, float]:
    """``{"VmRSS": MB, "VmHWM": MB}``: the current RSS and its peak."""
    return {key: kb / 1024 for key, kb in proc_status_kb("VmRSS", "VmHWM").items()}


def reset_peak_rss() -> bool:
    """Reset the kernel's VmHWM of this process to its current RSS; False
    where that isn't possible."""
    try:
        with open("/proc/self/clear_refs", "w") as file_:
            file_.write("5")
        return True
    except OSError:
        return False


def ru_maxrss_mb() -> float:
    """``ru_maxrss`` of this process in MB (see the module docstring)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident memory of this process (``/proc/self/statm``), MB."""
    with open("/proc/self/statm") as file_:
        pages = int(file_.read().split()[1])
    return pages * resource.getpagesize() / 2**20

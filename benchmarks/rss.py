"""Peak resident memory of this process, for the benchmarks that run each case in a fresh process."""


def peak_rss_mb() -> float:
    """VmHWM in MB (Linux). Unlike ``getrusage``'s ru_maxrss, which Linux carries across
    ``exec`` from the parent, it counts this process's own memory only."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

"""What the benchmark drivers share: the PyTorch child's environment and peak memory."""
import os
import resource


def torch_env():
    """The environment for the PyTorch child: Debian's torch does its GEMMs through OpenBLAS, which
    picks kernels by CPU model and falls back to SSE3 code on models it does not know (this
    machine's Xeon). Naming the AVX-512 kernel family makes the reference as fast as it can be;
    the record says which core type it ran with."""
    env = dict(os.environ)
    with open("/proc/cpuinfo") as f:
        avx512 = " avx512f" in f.read()
    if avx512 and "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    return env


def peak_rss_mib():
    """VmHWM of this process (the same measure the C++ benchmarks report)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

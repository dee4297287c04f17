"""What the benchmark drivers share: the PyTorch child's environment, the check of which BLAS it
really runs on, peak memory, and running a child with its CPU time.

Debian's python3-torch does its GEMMs through whatever libblas.so.3 the system's alternatives
point at. A machine provisioned by scripts/setup.sh has only the netlib reference BLAS (a few
GFLOP/s), and a driver that never looked would print a huge "speed-up" over it. So the PyTorch
child puts OpenBLAS first when Debian's libopenblas0-pthread is installed (without changing the
system), reports the library it actually mapped and its measured sgemm rate, and the drivers
refuse a reference BLAS unless told otherwise (`--allow-reference-blas`, recorded in the output).
"""
import os
import re
import resource
import sys
import time

# Debian's OpenBLAS builds; each directory holds a libblas.so.3 that the loader takes first when
# the directory leads LD_LIBRARY_PATH. The last is where scripts/fetch-openblas.sh unpacks the
# package without installing it.
OPENBLAS_DIRS = ["/usr/lib/x86_64-linux-gnu/openblas-pthread", "/usr/lib/x86_64-linux-gnu/openblas-openmp",
                 os.path.join(os.environ.get("MOEFORGE_CACHE", os.path.expanduser("~/.cache/moeforge")),
                              "openblas/usr/lib/x86_64-linux-gnu/openblas-pthread")]


def torch_env():
    """The environment for the PyTorch child: OpenBLAS first when it is installed, and told its
    AVX-512 kernel family (OpenBLAS picks kernels by CPU model and falls back to SSE3 code on
    models it does not know, such as this machine's Xeon)."""
    env = dict(os.environ)
    for d in OPENBLAS_DIRS:
        if os.path.exists(os.path.join(d, "libblas.so.3")):
            env["LD_LIBRARY_PATH"] = d + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
            break
    with open("/proc/cpuinfo") as f:
        avx512 = " avx512f" in f.read()
    if avx512 and "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    return env


def blas_kind(path):
    if "openblas" in path:
        return "openblas"
    if "mkl" in path:
        return "mkl"
    if "blis" in path:
        return "blis"
    if "atlas" in path:
        return "atlas"
    if re.search(r"/blas/libblas\.so", path):
        return "reference"
    return "unknown"


def torch_blas_info(torch, threads):
    """Which BLAS this process's torch runs on (the libraries mapped after a GEMM) and the sgemm
    rate it reaches at `threads` threads (1024 x 1024 x 1024, median of 5)."""
    torch.set_num_threads(threads)
    a = torch.randn(1024, 1024)
    a @ a
    rates = []
    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        rates.append(2 * 1024 ** 3 / (time.perf_counter() - t0) / 1e9)
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if re.search(r"blas|mkl|lapack", line)})
    blas = [p for p in libs if "lapack" not in p]
    kinds = sorted({blas_kind(p) for p in blas}) or ["none mapped (torch's own kernels)"]
    mkl = getattr(getattr(torch.backends, "mkl", None), "is_available", lambda: False)()
    return {"torch": torch.__version__, "blas_libraries": blas, "blas_kind": "+".join(kinds), "torch_mkl": mkl,
            "sgemm_gflops": round(sorted(rates)[len(rates) // 2], 1), "torch_threads": threads,
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto")}


def require_tuned_blas(info, allow_reference):
    """Stops the driver when the peer runs on the reference BLAS, unless allowed."""
    if info["blas_kind"] == "reference" and not info.get("torch_mkl") and not allow_reference:
        sys.exit("the PyTorch peer runs on the netlib reference BLAS (" + ", ".join(info["blas_libraries"]) +
                 f", {info['sgemm_gflops']} GFLOP/s): its figures would flatter moeforge. Install Debian's "
                 "libopenblas0-pthread or unpack it with scripts/fetch-openblas.sh (the driver then puts it first for "
                 "the peer alone), give --python a virtual "
                 "environment with a PyPI torch, or pass --allow-reference-blas to measure it anyway (recorded).")


def peak_rss_mib():
    """VmHWM of this process (the same measure the C++ benchmarks report)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe_torch_blas(python, threads):
    """torch_blas_info of a fresh `python` child run with torch_env() (what the peer will get)."""
    import json
    import subprocess
    code = ("import json, sys; sys.path.insert(0, %r); import bench_env, torch; "
            "print(json.dumps(bench_env.torch_blas_info(torch, %d)))" % (os.path.dirname(os.path.abspath(__file__)),
                                                                         threads))
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, env=torch_env()).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_timed(cmd, env=None):
    """Runs cmd to completion (exits naming it if it fails); returns (CompletedProcess, wall
    seconds, CPU seconds of the child: user + system, every thread)."""
    import subprocess
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu

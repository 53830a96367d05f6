"""What every benchmark needs: the machine's description, its matmul peak in the same run, timing and peak memory.

Peak memory: on CUDA `torch.cuda.max_memory_allocated` above what was allocated before; on the CPU the process's
resident set size sampled every 2 ms by a thread, above its value before, in a fresh process (`in_fresh_process`)
whose glibc is told (`mallopt`) to map large blocks directly, so that freed memory leaves the RSS and the RSS follows
live memory. Timed runs keep glibc's default allocator, as users have it.
"""

import ctypes
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def set_malloc_mmap_threshold(threshold: int = 65536) -> bool:
    """Allocations above `threshold` bytes get their own mapping, returned to the system when freed (glibc only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, threshold))  # M_MMAP_THRESHOLD
    except OSError:
        return False


def device_auto() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_info() -> dict:
    info = {"model": platform.processor() or platform.machine(), "flags": []}  # filled from /proc/cpuinfo on Linux
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name") and "model name" not in info:
                info["model name"] = info["model"] = line.split(":", 1)[1].strip()
            if line.startswith("cpu family") and "family" not in info:
                info["family"] = line.split(":", 1)[1].strip()
            if line.startswith("model\t") and "model_number" not in info:
                info["model_number"] = line.split(":", 1)[1].strip()
            if line.startswith("cpu MHz") and "mhz" not in info:
                info["mhz"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["flags"] = sorted(
                    flag for flag in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
                    if flag in flags
                )
                break
    except OSError:
        pass
    return info


def machine_info(device: torch.device) -> dict:
    import transformers

    from modeling_audiocap.embedding.runtime import cpu_has_fast_bf16

    cpu = _cpu_info()
    info = {
        "device": str(device),
        "cpu_model": cpu["model"] + (
            f" (family {cpu['family']}, model {cpu['model_number']}, {float(cpu['mhz']):.0f} MHz)"
            if "family" in cpu and "model_number" in cpu and "mhz" in cpu else ""
        ),
        "cpu_cores": os.cpu_count(),
        "cpu_flags": cpu["flags"],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_bf16_supported": bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)()),
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
            gpu_capability=f"{props.major}.{props.minor}", gpu_bf16=torch.cuda.is_bf16_supported(),
        )
    return info


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def _matmul_step(kind: str, size: int, device: torch.device, dtype: torch.dtype) -> Callable[[], torch.Tensor]:
    """One matmul of `kind`: "mm" (`torch.mm` in `dtype`) or "linear_autocast" (fp32 `F.linear` under `dtype` autocast,
    the path an encoder's linear layers take in low precision), on square `size` matrices."""
    if kind == "mm":
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        return lambda: a @ b
    a = torch.randn(size, size, device=device)
    w = torch.randn(size, size, device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype):
            return torch.nn.functional.linear(a, w)

    return step


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 1.0, max_call_seconds: float = 3.0) -> dict:
    """This machine's best single-call matmul FLOP/s in `dtype` (`flops_per_second`, from the path `best`, e.g.
    "mm_1024"): `torch.mm` on square matrices and, for low precision, `F.linear` under autocast, at growing sizes.
    A size whose single call would take longer than `max_call_seconds` (emulated bf16 on a CPU) is skipped."""
    sizes = (1024, 4096, 8192) if device.type == "cuda" else (256, 512, 1024, 2048)
    results = {}
    for kind in ("mm", "linear_autocast") if dtype != torch.float32 else ("mm",):
        rate = None
        for size in sizes:
            flops = 2 * size**3
            if rate is not None and flops / rate > max_call_seconds:
                break
            step = _matmul_step(kind, size, device, dtype)
            with torch.inference_mode():
                first = timed(step, device)  # includes warm-up
                rate = flops / first
                if flops / rate > max_call_seconds:
                    results[f"{kind}_{size}"] = rate
                    break
                second = timed(step, device)
                reps = max(1, min(50, int(seconds / max(second, 1e-6))))
                best = min([second] + [timed(step, device) for _ in range(reps - 1)])
            rate = flops / best
            results[f"{kind}_{size}"] = rate
    best = max(results, key=results.get)
    return {"flops_per_second": results[best], "best": best, "measured": results}


def held_matmul_rate(device: torch.device, dtype: torch.dtype, path: str, seconds: float = 1.0) -> float:
    """FLOP/s of the matmul `path` ("mm_1024": `matmul_peak`'s best) called back to back for `seconds`: the rate the
    machine holds at that moment. Measured between a benchmark's runs, it is the peak they are held against; on a
    shared host, or a CPU that boosts for short bursts, it is well below the best single call."""
    kind, size = path.rsplit("_", 1)
    step = _matmul_step(kind, int(size), device, dtype)
    flops, calls = 2 * int(size) ** 3, 0
    with torch.inference_mode():
        step()
        sync(device)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            sync(device)
            calls += 1
        return flops * calls / (time.perf_counter() - start)


def in_fresh_process(target: str, *args, timeout: float = 1800) -> dict:
    """`target` ("module:function") called with JSON-able `args` in a fresh Python process whose allocator returns freed
    blocks at once (`set_malloc_mmap_threshold`), so that its resident memory follows live memory; its JSON-able
    result, or {"error": the end of its stderr}. Peak memory on a CPU is measured this way, apart from the timed runs,
    which that allocator setting would slow (every large block mapped and page-faulted anew, a cost users do not pay)."""
    module, function = target.split(":")
    code = ("import json, sys\nfrom bench.common import set_malloc_mmap_threshold\nset_malloc_mmap_threshold()\n"
            f"from {module} import {function}\n"
            f"print('RESULT ' + json.dumps({function}(*json.loads(sys.argv[1])), default=float))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])


class PeakMemory:
    """Peak memory above the starting point while the `with` block runs, in MiB (`.peak_mib`)."""

    def __init__(self, device: torch.device, interval: float = 0.002):
        self.device = device
        self.interval = interval
        self.peak_mib = 0.0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        import psutil

        self._process = psutil.Process()
        self._base = self._process.memory_info().rss
        self._max = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mib = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, self._process.memory_info().rss)
        self.peak_mib = (self._max - self._base) / 2**20


def conv1d_rate(device: torch.device, dtype: torch.dtype, seconds: float = 0.5) -> float:
    """FLOP/s of the convolution that dominates wav2vec2 / MERT feature encoders (512 -> 512 channels, kernel 3,
    stride 2, 1 s of 16 kHz audio after the first layer: 3200 -> 1600 steps), fp32 or under `dtype` autocast."""
    x = torch.randn(1, 512, 3200, device=device)
    w = torch.randn(512, 512, 3, device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return torch.nn.functional.conv1d(x, w, stride=2)

    flops = 2 * 512 * 512 * 3 * 1600
    with torch.inference_mode():
        step()
        first = timed(step, device)
        reps = max(1, min(20, int(seconds / max(first, 1e-6))))
        best = min(timed(step, device) for _ in range(reps)) if reps > 1 else first
    return flops / best


def rss_mib() -> float:
    """This process's resident set size now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    """Restart the RSS high-water mark from the current RSS (Linux; ru_maxrss would keep the parent's, from before exec)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_mib() -> float:
    """The RSS high-water mark (VmHWM) since the last `reset_peak` (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

"""The two memory ceilings of this GPU, measured with PyTorch: device-to-device copy (bytes read + written) and an
F16 GEMV over a 2 GiB matrix (bytes read). Medians of CUDA-event timings after warm-up; prints JSON."""
import json
import torch

def median_ms(fn, repeat=30):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); fn(); end.record(); end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]

n = 1 << 30  # 2 GiB of F16
a = torch.randn(n, dtype=torch.float16, device="cuda")
b = torch.empty_like(a)
copy_ms = median_ms(lambda: b.copy_(a))
m = a.view(32768, 32768)
x = torch.randn(32768, dtype=torch.float16, device="cuda")
gemv_ms = median_ms(lambda: torch.mv(m, x))
print(json.dumps({"device": torch.cuda.get_device_name(), "copy_tb_s": 2 * a.numel() * 2 / copy_ms / 1e9,
                  "read_tb_s": m.numel() * 2 / gemv_ms / 1e9}))

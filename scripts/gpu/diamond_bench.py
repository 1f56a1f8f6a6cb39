"""Times DIAMOND's own PyTorch code (eager) on the shared DIAMOND fixture, on a GPU.

The peer figure for `dreamyard bench model` in scripts/gpu-check.sh: the same weights
(agent.pt), the same config (config.json of the fixture), the same frame size and batch sizes,
one generated frame = one `DiffusionSampler.sample` call (3 denoiser calls for this fixture),
timed with CUDA events after a warm-up, median of the repeats. bf16 runs under
`torch.autocast`, as DIAMOND would run it in half precision.

DIAMOND's sources are not part of Dreamyard: scripts/gpu-check.sh carries
src/models/{__init__,blocks}.py and src/models/diffusion/*.py at the fixture's commit into an
ignored folder, and this script imports them from there (its `data` and `utils` imports, used
only for training, are stubbed).

Usage: diamond_bench.py --diamond-src DIR --fixture DIR [--batch 1,8,32,64] [--steps 20]
       [--dtypes f32,bf16] [--device cuda|cpu] > out.json
(`--device cpu` is the dry run: the same code timed with the wall clock.)
"""

import argparse
import json
import math
import statistics
import sys
import time
import types


def load_diamond(src):
    # denoiser.py imports `Batch` from data and `LossAndLogs` from utils (training only).
    sys.modules.setdefault("data", types.ModuleType("data")).Batch = object
    sys.modules.setdefault("utils", types.ModuleType("utils")).LossAndLogs = tuple
    sys.path.insert(0, src)
    from models.diffusion import (  # noqa: E402  (DIAMOND's modules, carried)
        Denoiser,
        DenoiserConfig,
        DiffusionSampler,
        DiffusionSamplerConfig,
        InnerModelConfig,
    )

    return Denoiser, DenoiserConfig, DiffusionSampler, DiffusionSamplerConfig, InnerModelConfig


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--diamond-src", required=True)
    p.add_argument("--fixture", required=True)
    p.add_argument("--batch", default="1,8,32,64")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dtypes", default="f32,bf16")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = p.parse_args()

    import torch

    Denoiser, DenoiserConfig, DiffusionSampler, DiffusionSamplerConfig, InnerModelConfig = (
        load_diamond(args.diamond_src)
    )
    with open(f"{args.fixture}/config.json") as f:
        cfg = json.load(f)
    den_cfg = cfg["denoiser"]
    inner = InnerModelConfig(**den_cfg["inner_model"])
    denoiser = Denoiser(
        DenoiserConfig(
            inner_model=inner,
            sigma_data=den_cfg["sigma_data"],
            sigma_offset_noise=den_cfg["sigma_offset_noise"],
        )
    )
    sd = torch.load(f"{args.fixture}/agent.pt", map_location="cpu", weights_only=True)
    sd = {k.split(".", 1)[1]: v for k, v in sd.items() if k.startswith("denoiser.")}
    denoiser.load_state_dict(sd)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    denoiser = denoiser.to(dev).eval()
    s = dict(cfg["diffusion_sampler"])
    if s.get("s_tmax") == "inf":
        s["s_tmax"] = math.inf
    sampler = DiffusionSampler(denoiser, DiffusionSamplerConfig(**s))
    calls = (len(sampler.sigmas) - 1) * (1 if s.get("order", 1) == 1 else 2)

    t = inner.num_steps_conditioning
    h, w = cfg["data"]["height"], cfg["data"]["width"]
    results = {
        "bench": "diamond_pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "frame": [h, w],
        "denoiser_calls_per_frame": calls,
        "steps": args.steps,
        "runs": [],
    }
    for dtype in args.dtypes.split(","):
        for b in [int(x) for x in args.batch.split(",")]:
            obs = torch.rand(b, t, inner.img_channels, h, w, device=dev) * 2 - 1
            act = torch.randint(0, inner.num_actions, (b, t), device=dev)
            ctx = (
                torch.autocast(dev.type, dtype=torch.bfloat16)
                if dtype == "bf16"
                else torch.autocast(dev.type, enabled=False)
            )
            with torch.no_grad(), ctx:
                for _ in range(3):
                    sampler.sample(obs, act)
                if cuda:
                    torch.cuda.synchronize()
                times = []
                for _ in range(args.steps):
                    if cuda:
                        start = torch.cuda.Event(enable_timing=True)
                        end = torch.cuda.Event(enable_timing=True)
                        start.record()
                        sampler.sample(obs, act)
                        end.record()
                        torch.cuda.synchronize()
                        times.append(start.elapsed_time(end))
                    else:
                        t0 = time.perf_counter()
                        sampler.sample(obs, act)
                        times.append(1e3 * (time.perf_counter() - t0))
            med = statistics.median(times)
            results["runs"].append(
                {
                    "dtype": dtype,
                    "batch": b,
                    "ms_per_step": med,
                    "ms_per_step_min": min(times),
                    "ms_per_frame": med / b,
                    "frames_per_s": 1e3 * b / med,
                }
            )
            print(f"diamond pytorch {dtype} batch {b}: {1e3 * b / med:.1f} frames/s", file=sys.stderr)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

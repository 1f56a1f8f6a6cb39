"""LeRobot's own video code on the frames `dreamyard bench video` uses: the peer of that bench.

Reads a Dreamyard-recorded image dataset (frames decoded before the clock starts), then times
what LeRobot 0.6 does with them:

- write: `LeRobotDataset.create(..., use_videos=True)` with LeRobot's default encoder (SVT-AV1,
  yuv420p, g=2, crf=30), `add_frame` for every frame, `save_episode` per episode (where LeRobot
  encodes the episode's MP4), `finalize`;
- sequential read: `ds[i]` for every index in order (LeRobotDataset decodes one frame per item,
  torchcodec);
- random read: `ds[i]` for the same number of pseudo-random indices as Dreamyard's bench.

    python scripts/bench_lerobot_video.py SRC OUT [RANDOM]

Prints one JSON object. Needs lerobot 0.6 (`pip install 'lerobot[dataset]'`, Python 3.12) and
FFmpeg's shared libraries for torchcodec.
"""

import io
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

import lerobot
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def source_episodes(src: Path):
    episodes = {}
    for f in sorted((src / "data").rglob("*.parquet")):
        t = pq.read_table(f, columns=["observation.image", "observation.state", "action", "episode_index"])
        for r in t.to_pylist():
            img = np.array(Image.open(io.BytesIO(r["observation.image"]["bytes"])).convert("RGB"))
            episodes.setdefault(r["episode_index"], []).append(
                (img, np.array(r["observation.state"], np.float32), np.array(r["action"], np.float32))
            )
    return [episodes[k] for k in sorted(episodes)]


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    n_random = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    info = json.loads((src / "meta/info.json").read_text())
    fps = int(info["fps"])
    task = "push the T onto the target"
    episodes = source_episodes(src)
    h, w, _ = episodes[0][0][0].shape
    sdim, adim = len(episodes[0][0][1]), len(episodes[0][0][2])
    features = {
        "observation.image": {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (sdim,), "names": None},
        "action": {"dtype": "float32", "shape": (adim,), "names": None},
    }
    if out.exists():
        shutil.rmtree(out)
    frames = sum(len(e) for e in episodes)

    start = time.perf_counter()
    ds = LeRobotDataset.create(repo_id="bench/video", fps=fps, features=features, root=out, use_videos=True)
    for ep in episodes:
        for img, state, action in ep:
            ds.add_frame({"observation.image": img, "observation.state": state, "action": action, "task": task})
        ds.save_episode()
    ds.finalize()
    write_s = time.perf_counter() - start

    back = LeRobotDataset("bench/video", root=out, video_backend="torchcodec")
    start = time.perf_counter()
    for i in range(len(back)):
        back[i]["observation.image"]
    read_s = time.perf_counter() - start

    rng = random.Random(0)
    idx = [rng.randrange(len(back)) for _ in range(n_random)]
    start = time.perf_counter()
    for i in idx:
        back[i]["observation.image"]
    random_s = time.perf_counter() - start

    print(json.dumps({
        "bench": "video (lerobot)",
        "lerobot": lerobot.__version__,
        "frame": [w, h],
        "episodes": len(episodes),
        "frames": frames,
        "threads": os.cpu_count(),
        "write_seconds": write_s,
        "write_frames_per_s": frames / write_s,
        "read_seconds": read_s,
        "read_frames_per_s": frames / read_s,
        "random_frames": n_random,
        "random_frames_per_s": n_random / random_s,
        "video_dataset_bytes": dir_size(out),
    }))


if __name__ == "__main__":
    main()

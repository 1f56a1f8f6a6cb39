"""Writes the LeRobot-made video datasets the scenes tests read, with the frames LeRobot's own
decoder returns for them (the reference Dreamyard's reader must match).

Needs the real `lerobot` package (0.6, Python 3.12, `pip install 'lerobot[dataset]'`) and
FFmpeg's shared libraries (torchcodec decodes with them). Source frames come from a small
Dreamyard push-t dataset:

    dreamyard record --episodes 3 --max-steps 12 --size 96 --seed 40 --out /tmp/vsrc
    python scripts/lerobot_video_fixture.py /tmp/vsrc scenes/tests/fixtures/lerobot-video

With lerobot 0.6 (codebase v3.0), for each codec (AV1, LeRobot's default; H.264; HEVC) it
writes `<out>/<codec>/` as
LeRobotDataset.create + add_frame + save_episode + finalize leave it, then reads every frame
back through LeRobotDataset (torchcodec) and stores episode e's frames as one vertical strip,
`<out>/<codec>-decoded/episode-<e>.png` (lossless). With lerobot 0.3 (codebase v2.1, one
MP4 per episode; installed beside 0.6 with `pip install --no-deps --target DIR
lerobot==0.3.3` and run with `PYTHONPATH=DIR`) it writes `<out>/v21-av1/` and its decoded
frames the same way. `<out>/README.md` says how each was made.
"""

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

import lerobot
from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset

LEGACY = CODEBASE_VERSION == "v2.1"

CODECS = {"av1": "libsvtav1", "h264": "h264", "hevc": "hevc"}


def source_episodes(src: Path):
    rows = []
    for f in sorted((src / "data").rglob("*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    episodes = {}
    for r in rows:
        img = np.array(Image.open(io.BytesIO(r["observation.image"]["bytes"])).convert("RGB"))
        episodes.setdefault(r["episode_index"], []).append(
            (img, np.array(r["observation.state"][:2], np.float32), np.array(r["action"], np.float32))
        )
    return [episodes[k] for k in sorted(episodes)]


def write(out: Path, name: str, vcodec: str, episodes, fps: int) -> None:
    root = out / name
    if root.exists():
        shutil.rmtree(root)
    h, w, _ = episodes[0][0][0].shape
    features = {
        "observation.image": {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
    }
    task = "push the T onto the target"
    if LEGACY:
        ds = LeRobotDataset.create(
            repo_id=f"dreamyard/fixture-{name}", fps=fps, features=features, root=root,
            robot_type="2d pointer", use_videos=True,
        )
    else:
        from lerobot.configs.video import RGBEncoderConfig

        ds = LeRobotDataset.create(
            repo_id=f"dreamyard/fixture-{name}", fps=fps, features=features, root=root,
            robot_type="2d pointer", use_videos=True, rgb_encoder=RGBEncoderConfig(vcodec=vcodec),
        )
    for ep in episodes:
        for img, state, action in ep:
            frame = {"observation.image": img, "observation.state": state, "action": action}
            if LEGACY:
                ds.add_frame(frame, task=task)
            else:
                ds.add_frame({**frame, "task": task})
        ds.save_episode()
    if not LEGACY:
        ds.finalize()

    decoded = out / f"{name}-decoded"
    if decoded.exists():
        shutil.rmtree(decoded)
    decoded.mkdir(parents=True)
    if LEGACY:
        # lerobot 0.3's LeRobotDataset does not load with today's `datasets`; its decoding
        # function (what LeRobotDataset.__getitem__ calls) does.
        from lerobot.datasets.video_utils import decode_video_frames

        for e, ep in enumerate(episodes):
            video = root / f"videos/chunk-000/observation.image/episode_{e:06d}.mp4"
            x = decode_video_frames(video, [i / fps for i in range(len(ep))], 1e-4, "torchcodec").numpy()
            frames = [np.round(f.transpose(1, 2, 0) * 255.0).clip(0, 255).astype(np.uint8) for f in x]
            Image.fromarray(np.concatenate(frames, axis=0)).save(decoded / f"episode-{e}.png")
        return
    back = LeRobotDataset(f"dreamyard/fixture-{name}", root=root, video_backend="torchcodec")
    start = 0
    for e, ep in enumerate(episodes):
        frames = []
        for i in range(len(ep)):
            item = back[start + i]
            assert int(item["episode_index"]) == e and int(item["frame_index"]) == i
            x = item["observation.image"].numpy()  # C, H, W floats in [0, 1]
            frames.append(np.round(x.transpose(1, 2, 0) * 255.0).clip(0, 255).astype(np.uint8))
        start += len(ep)
        Image.fromarray(np.concatenate(frames, axis=0)).save(decoded / f"episode-{e}.png")
    print(name, json.loads((root / "meta/info.json").read_text())["features"]["observation.image"].get("info"))


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    episodes = source_episodes(src)
    fps = 10
    if LEGACY:
        write(out, "v21-av1", "libsvtav1", episodes, fps)
        return
    for name, vcodec in CODECS.items():
        write(out, name, vcodec, episodes, fps)
    (out / "README.md").write_text(
        "# LeRobot-written video datasets (test fixture)\n\n"
        f"Written by lerobot {lerobot.__version__} (`LeRobotDataset.create`, `add_frame`, "
        "`save_episode`, `finalize`) from a Dreamyard push-t recording "
        "(`dreamyard record --episodes 3 --max-steps 12 --size 96 --seed 40`), "
        f"{len(episodes)} episodes of {[len(e) for e in episodes]} frames at {fps} fps, one "
        "folder per codec (`av1` is LeRobot's default encoder, libsvtav1; `h264`, `hevc`), "
        "LeRobot's other encoder defaults (yuv420p, g=2, crf 30).\n\n"
        "`<codec>-decoded/episode-<e>.png` holds the frames LeRobot's own reader returns "
        "(`LeRobotDataset(...)[i]`, torchcodec), episode e's frames stacked top to bottom, as "
        "round(255 x value).\n\n"
        "`v21-av1` is the same recording written by lerobot 0.3.3 (codebase v2.1, one MP4 per "
        "episode, its default AV1 encoding), with `v21-av1-decoded` decoded by that version's "
        "`decode_video_frames` (torchcodec), which its LeRobotDataset calls.\n\n"
        "Remade by `scripts/lerobot_video_fixture.py` (its docstring gives both commands).\n"
    )


if __name__ == "__main__":
    main()

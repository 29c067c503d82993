"""Detection benchmark: a tiny fused model with the detection head, trained on the shapes demo set's boxes on CPU,
scored on held-out images (mAP@0.5 and mAP@0.5:0.95 by pycocotools, class-agnostic and with captions as classes),
before and after training. Not a timed test: run by hand, it writes benchmarks/results/detection.json.

    OMP_NUM_THREADS=1 python benchmarks/bench_detection.py [--n_train 1000 --epochs 10 ...]
"""
import argparse, json, os, platform, subprocess, tempfile, time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
import transformers

RESULTS = Path(__file__).parent / "results"


def git(*args):
    try: return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except Exception: return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n_train", type=int, default=1000); ap.add_argument("--n_val", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=10); ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--learning_rate", type=float, default=2e-3); ap.add_argument("--num_queries", type=int, default=25)
    ap.add_argument("--detection_caption_weight", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0); ap.add_argument("--out", default=str(RESULTS / "detection.json"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from dual_vision_nb.detection import detection_demo
    load_before, t0 = os.getloadavg(), time.time()
    with tempfile.TemporaryDirectory() as tmp:
        summary, learn = detection_demo(tmp, n_train=args.n_train, n_val=args.n_val, epochs=args.epochs,
                                        batch_size=args.batch_size, learning_rate=args.learning_rate,
                                        num_queries=args.num_queries, detection_caption_weight=args.detection_caption_weight,
                                        seed=args.seed)
        examples = [{"image": r["images"][0].split("/")[-1], "truth": r["objects"], "predicted": [p for p in ps if p["score"] >= 0.3]}
                    for r, ps in zip(learn.val_records[:5], learn.val_predictions[:5])]
    import dual_vision_nb
    result = {"benchmark": "detection", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_seconds": round(time.time() - t0, 1),
              **summary, "examples": examples,
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "cuda": torch.cuda.is_available(),
                          "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
              "versions": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
                           "numpy": np.__version__, "dual_vision_nb": getattr(dual_vision_nb, "__version__", None)},
              "commit": git("rev-parse", "HEAD"), "worktree_dirty": bool(git("status", "--porcelain"))}
    out = Path(args.out); out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    h, u = summary["held_out"], summary["untrained"]
    print(f"held-out mAP@0.5 {h['map_50']:.3f}, mAP@0.5:0.95 {h['map_50_95']:.3f} (untrained {u['map_50']:.3f} / "
          f"{u['map_50_95']:.3f}); with captions as classes {h['caption_map_50']:.3f} / {h['caption_map_50_95']:.3f}; "
          f"{summary['steps']} steps in {summary['train_seconds']:.0f} s -> {out}")


if __name__ == "__main__":
    main()

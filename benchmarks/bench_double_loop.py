"""Fixed schedule vs the double-loop controller (`DoubleLoopCB`) on the shapes demo set: same seeds, same budget.

For each seed, two runs through the trainer's own `train(config)`: identical model initialisation, data order and
number of optimizer steps; one with the fixed schedule (warm-up + cosine), one with `DoubleLoopCB` in
`training.callbacks` (its settings as the callback's arguments, as any `dvn_train` config gives them). Reports the final validation loss and the held-out answer accuracy (greedy, exact match) of every run,
their mean ± std over seeds, and the paired per-seed differences. Writes benchmarks/results/double_loop.json.

Not a test: a small budget (~5 min on one thread of a shared 2-core CPU, ~3 min unloaded), run by hand.

usage: python benchmarks/bench_double_loop.py [--seeds 0,1,2] [--steps 400] [--every 20] [--n-train 240] [--n-val 48]
"""
import argparse, math, os, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import _bench
from _bench import metadata, setup, write_result


def config(run_dir, data, seed, steps, callbacks, n_train):
    epochs = -(-steps * 8 // n_train)         # the cosine spans the whole budget (it ends within one epoch of max_steps)
    return {"model": {"tiny": {"hidden_size": 32, "intermediate_size": 64, "vision_hidden_size": 32},
                      "common_dim": 16, "max_pixels": 16 * 28 * 28},
            "training": {"output_dir": str(run_dir), "seed": seed, "batch_size": 8, "learning_rate": 3e-3, "num_epochs": epochs,
                         "max_steps": steps, "warmup_steps": 10, "scheduler": "cosine", "weight_decay": 0.01,
                         "save_every_steps": steps, "keep_last": 1, "callbacks": callbacks},
            "loss": {"lm_weight": 1.0, "diversity_weight": 0.0},
            "data": {"train_data_path": str(data["train"]), "val_data_path": str(data["val"]), "max_length": 256},
            "logging": {"tensorboard": False, "progress_bar": False}}


def one_run(arm, seed, data, a, tmp):
    from dual_vision_nb.data import load_records
    from dual_vision_nb.evaluation import answer_accuracy
    from dual_vision_nb.recipe import train
    cbs = [{"cls": "dual_vision_nb.double_loop:DoubleLoopCB", "args": {"every": a.every, "seed": seed}}] if arm == "double_loop" else []
    t0 = time.time()
    learn = train(config(tmp / f"{arm}-{seed}", data, seed, a.steps, cbs, a.n_train))
    train_s = time.time() - t0
    valid_loss = learn.validate()["valid_loss"]
    acc, _ = answer_accuracy(learn.unwrapped, learn.processor, load_records(data["val"])[0], max_new_tokens=6)
    out = {"arm": arm, "seed": seed, "steps": learn.step, "valid_loss": valid_loss, "answer_accuracy": acc,
           "train_seconds": round(train_s, 1)}
    if arm == "double_loop":
        cb = next(c for c in learn.cbs if type(c).__name__ == "DoubleLoopCB")
        out["decisions"] = [{"step": e["step"], "val_loss": round(e["val_loss"], 5),
                             "reward": None if e["reward"] is None else round(e["reward"], 5),
                             "scales": {g: round(s, 4) for g, s in e["scales"].items()}} for e in cb.history]
        groups = sorted({g for e in cb.history for g in e["scales"]})
        # geometric mean: the exploration is symmetric in log scale, so an arithmetic mean would sit above 1 by itself
        out["geometric_mean_scale"] = {g: round(math.exp(statistics.fmean(math.log(e["scales"].get(g, 1.0)) for e in cb.history)), 4)
                                       for g in groups}
    return out


def spread(xs): return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "values": xs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps per run (the budget)")
    ap.add_argument("--every", type=int, default=20, help="the controller's decision interval K")
    ap.add_argument("--n-train", type=int, default=240)
    ap.add_argument("--n-val", type=int, default=48)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    state = setup(threads=int(os.environ.get("OMP_NUM_THREADS", "1")))
    from dual_vision_nb.data import load_records, make_shapes_dataset
    from dual_vision_nb.evaluation import blind_baseline
    seeds = [int(s) for s in a.seeds.split(",")]
    runs = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = make_shapes_dataset(tmp / "data", n_train=a.n_train, n_val=a.n_val, seed=0)
        blind = blind_baseline(load_records(data["train"])[0], load_records(data["val"])[0])
        for seed in seeds:
            for arm in ("fixed", "double_loop"):
                r = one_run(arm, seed, data, a, tmp); runs.append(r)
                print(f"seed {seed} {arm:<12} valid_loss {r['valid_loss']:.4f}  answer accuracy {r['answer_accuracy']:.1%}  "
                      f"({r['train_seconds']} s)", flush=True)
    by = {arm: [r for r in runs if r["arm"] == arm] for arm in ("fixed", "double_loop")}
    summary = {arm: {m: spread([r[m] for r in rs]) for m in ("valid_loss", "answer_accuracy", "train_seconds")} for arm, rs in by.items()}
    paired = {m: spread([d[m] - f[m] for f, d in zip(by["fixed"], by["double_loop"])]) for m in ("valid_loss", "answer_accuracy")}
    result = {**metadata("bench_double_loop", state, a),
              "setup": {"data": f"shapes demo set, {a.n_train} train / {a.n_val} val images (VQA records)",
                        "model": "tiny fused model (LM hidden 32, Qwen vision hidden 32, DINOv2 hidden 32, common_dim 16)",
                        "budget": f"{a.steps} optimizer steps of batch 8, AdamW lr 3e-3, warm-up 10 + cosine over "
                                  f"{-(-a.steps * 8 // a.n_train)} epochs ({-(-a.steps * 8 // a.n_train) * a.n_train // 8} steps)",
                        "controller": f"DoubleLoopCB, decision every {a.every} steps, other settings default",
                        "blind_baseline_accuracy": blind},
              "summary": summary, "paired_double_loop_minus_fixed": paired, "runs": runs}
    out = write_result("double_loop", result, a.out)
    f, dl = summary["fixed"], summary["double_loop"]
    print(f"\n| schedule | valid loss (mean ± std) | answer accuracy (mean ± std) |\n| --- | --- | --- |")
    for name, s in (("fixed", f), ("double loop", dl)):
        print(f"| {name} | {s['valid_loss']['mean']:.4f} ± {s['valid_loss']['std']:.4f} | "
              f"{s['answer_accuracy']['mean']:.1%} ± {s['answer_accuracy']['std']:.1%} |")
    print(f"paired (double loop - fixed): valid loss {paired['valid_loss']['mean']:+.4f} ± {paired['valid_loss']['std']:.4f}, "
          f"accuracy {paired['answer_accuracy']['mean']:+.1%} ± {paired['answer_accuracy']['std']:.1%}; blind baseline {blind:.1%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

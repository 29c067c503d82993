"""How a training step of the fused model grows with image size, batch size and sequence length, and where it goes.

Three sweeps around a base point (224 px square images, batch 4, a 4-word answer): image side 112 -> 448 px, batch
1 -> 8, answer length (so LM tokens) growing. For each point: the step time (forward + backward + AdamW, fastest of
N), the peak memory the step allocates on top of the resident model and optimizer state (torch.profiler's allocation
events), and torch.profiler's breakdown by component (Qwen vision tower, DINOv2, fusion, LM, optimizer, the rest;
backward ops charged to the component whose forward created them; fastest of 3 profiled steps per component). Then the growth exponent of each component (slope
of log time vs log pixels / batch / tokens): Qwen's vision tower should sit between 1 (windowed blocks) and 2 (its
full-attention block), DINOv2 (full attention in every block) closer to 2 as images grow, the LM ~1 in tokens.

usage: OMP_NUM_THREADS=1 python benchmarks/bench_scaling.py [--size demo] [--repeats 3] [--min-seconds 2] [--quick]
"""
import argparse, gc
import numpy as np
import torch
import _bench as B
from dual_vision_nb.batching import PaddedCollator
from dual_vision_nb.encoders import build_processor

PARTS = ("qwen_vision", "dinov2", "fusion", "lm", "optimizer", "other")


def point(model, opt, processor, side, batch_size, answer_words, repeats, min_seconds=0.0, profile_runs=3):
    samples = [B.synthetic_sample(processor, side, side, answer_words, seed=i) for i in range(batch_size)]
    batch = B.model_inputs(PaddedCollator(processor)(samples))
    step = B.fused_step(model, opt, batch)
    runs = B.interleaved({"step": step}, repeats=repeats, warmup=1, min_seconds=min_seconds)
    gc.collect()
    rss0 = _rss_bytes()
    prof = B.breakdown(model, step, memory=True, repeats=profile_runs)
    return {"side_px": side, "batch_size": batch_size, "answer_words": answer_words,
            "patches": batch["pixel_values"].shape[0], "image_tokens": batch["pixel_values"].shape[0] // 4,
            "seq_len": batch["input_ids"].shape[1], "lm_tokens": int(batch["attention_mask"].sum()),
            "step_ms": B.best_ms(runs["step"]), "step_ms_median": B.median_ms(runs["step"]),
            "peak_alloc_mb": prof["peak_alloc_mb"], "rss_mb": round(rss0 / 2**20, 1),
            "profiled_step_ms": prof["profiled_step_ms"],
            "components_ms": {c: prof["components"][c]["total_ms"] for c in PARTS},
            "shares": {c: prof["components"][c]["share"] for c in PARTS}}


def _rss_bytes():
    "The process's resident memory now (psutil when installed, else /proc)."
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        import os
        with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def slope(xs, ys):
    "Least-squares slope of log y on log x (the growth exponent)."
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.maximum(np.asarray(ys, float), 1e-9))
    return round(float(np.polyfit(xs, ys, 1)[0]), 3)


def exponents(rows, x_key):
    "Growth exponents over the whole sweep, and between its last two points (where fixed costs weigh least)."
    xs = [r[x_key] for r in rows]
    series = {c: [r["components_ms"][c] for r in rows] for c in PARTS if c != "optimizer"}
    series["step"] = [r["step_ms"] for r in rows]
    series["peak_alloc"] = [r["peak_alloc_mb"] for r in rows]
    return {"overall": {k: slope(xs, v) for k, v in series.items()},
            "last_interval": {k: slope(xs[-2:], v[-2:]) for k, v in series.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="demo", help="model size: tiny, demo, small (see _bench.SIZES)")
    ap.add_argument("--sides", default="112,224,336,448", help="image sides (px, multiples of 28)")
    ap.add_argument("--batch-sizes", default="1,2,4,8")
    ap.add_argument("--answer-words", default="4,48,144,400", help="answer lengths (words) for the sequence sweep")
    ap.add_argument("--repeats", type=int, default=3, help="steps timed at least per point (the fastest counts)")
    ap.add_argument("--min-seconds", type=float, default=2, help="keep timing each point this long")
    ap.add_argument("--profile-runs", type=int, default=3, help="profiled steps per point (each component keeps its fastest)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="three points per sweep, 2 repeats")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.quick: a.sides, a.batch_sizes, a.answer_words, a.repeats, a.min_seconds, a.profile_runs = "112,224,336", "1,2,4", "4,48,144", 2, 0, 1
    state = B.setup(a.threads)
    processor = build_processor(corpus=None, max_pixels=256 * 28 * 28)
    model, _ = B.model_pair(a.size)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    base = dict(side=224, batch_size=4, answer_words=4)
    sweeps = {"image_side": [dict(base, side=int(s)) for s in a.sides.split(",")],
              "batch_size": [dict(base, batch_size=int(b)) for b in a.batch_sizes.split(",")],
              "sequence": [dict(base, answer_words=int(w)) for w in a.answer_words.split(",")]}
    results, growth = {}, {}
    for name, points in sweeps.items():
        results[name] = []
        for p in points:
            r = point(model, opt, processor, p["side"], p["batch_size"], p["answer_words"], a.repeats, a.min_seconds,
                      a.profile_runs)
            results[name].append(r)
            print(f"{name}: {p} -> {r['step_ms']:.0f} ms, peak {r['peak_alloc_mb']:.0f} MB, "
                  f"{r['patches']} patches, {r['lm_tokens']} LM tokens", flush=True)
    growth["image_side"] = {"vs_pixels": exponents([dict(r, pixels=r["side_px"] ** 2) for r in results["image_side"]], "pixels")}
    growth["batch_size"] = {"vs_batch": exponents(results["batch_size"], "batch_size")}
    growth["sequence"] = {"vs_lm_tokens": exponents(results["sequence"], "lm_tokens")}
    params = {"model": B.n_params(model), "qwen_vision": B.n_params(model.model.visual),
              "dinov2": B.n_params(model.model.dinov2), "fusion": B.n_params(model.model.fusion),
              "lm": B.n_params(model.model.language_model)}
    state_mb = sum(p.numel() * p.element_size() for p in model.parameters()) * 4 / 2**20   # weights, grads, 2 Adam moments
    summary = {**B.metadata("bench_scaling", state, a), "model_size": a.size, "params": params,
               "resident_weights_grads_adam_mb": round(state_mb, 2), "base_point": base, "sweeps": results,
               "growth_exponents": growth}
    out = B.write_result("scaling", summary, a.out)
    cols = ["step_ms", "peak_alloc_mb"] + [f"{c}" for c in PARTS]
    for name, rows in results.items():
        key = {"image_side": "side_px", "batch_size": "batch_size", "sequence": "lm_tokens"}[name]
        print(f"\n{name} (model {a.size}, {torch.get_num_threads()} thread); component shares of the profiled step\n")
        table = [{key: r[key], "patches": r["patches"], "lm_tokens": r["lm_tokens"], "step_ms": r["step_ms"],
                  "peak_alloc_mb": r["peak_alloc_mb"], **{c: f"{r['shares'][c]:.0%}" for c in PARTS}} for r in rows]
        print(B.md_table(table, list(table[0])))
    print("\ngrowth exponents (slope of log time on log x):")
    for name, g in growth.items():
        for x, e in g.items():
            for span, v in e.items(): print(f"  {name} {x} ({span}): " + ", ".join(f"{k} {u:.2f}" for k, u in v.items()))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

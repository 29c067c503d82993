"""What the fusion costs in a training step: the fused model vs stock Qwen2.5-VL plus a separate DINOv2 forward+backward.

For each model size, one batch of shapes-demo samples (8 images of 112-224 px, varied aspect ratio) is trained on
(forward + backward + AdamW) three ways, with the same weights, interleaved, fastest of N rounds:

* `fused`: the dual-vision model (`encoder_mode="fused"`), one optimizer over all its parameters;
* `stock+dinov2`: stock `Qwen2_5_VLForConditionalGeneration` plus a separate forward + backward of the same DINOv2 on
  the same images (aligned and merged exactly as the fused model does), one optimizer over both: everything the fused
  model computes except the fusion. Both losses go back in one backward, so both graphs are alive at once, as in the
  fused model; `stock+dinov2 (two backwards)` runs Qwen's backward before DINOv2's forward, holds less memory at its
  peak, and comes out a few % faster at tiny sizes for that reason alone (the peak allocation of each is recorded);
* `stock`: stock Qwen2.5-VL alone.

The fusion's own share of the step is measured three ways: the difference `fused - (stock+dinov2)` (of the fastest
runs, and as the median over rounds of the paired ratio, which cancels slow drifts of the machine's load), the fusion
module's forward + backward timed on its own with the step's real token streams (plus AdamW on its parameters), and
torch.profiler's per-component breakdown of the fused step. Goal: the fusion <= 5% of the step.

`--seconds dinov3,siglip2,...` repeats it with each second encoder in DINOv2's place (same width and depth; "stock+dinov2" is
then stock + that encoder) and writes `fusion_overhead_seconds.json`.

usage: OMP_NUM_THREADS=1 python benchmarks/bench_fusion_overhead.py [--sizes tiny,demo,small] [--seconds dinov2] [--repeats 7] [--min-seconds 20] [--quick]
"""
import argparse, copy, time
import torch
import _bench as B
from dual_vision_nb.batching import PaddedCollator
from dual_vision_nb.encoders import build_processor, second_merged_tokens


def fusion_alone(fused, batch, repeats):
    "The fusion module's forward + backward (and AdamW on its parameters) on the step's real token streams."
    m = fused.model
    with torch.no_grad():
        q = m.visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"]).pooler_output
        d = second_merged_tokens(m.dinov2, batch["pixel_values"], batch["image_grid_thw"])
    grid = batch["image_grid_thw"]
    counts = grid.prod(-1) // 4
    tid = torch.repeat_interleave(torch.arange(len(grid)), counts)
    q, d = q.detach().requires_grad_(), d.detach().requires_grad_()
    g = torch.randn(q.shape[0], q.shape[1])
    fusion = copy.deepcopy(m.fusion).train()
    opt = torch.optim.AdamW(fusion.parameters(), 1e-4)
    def fwd_bwd():
        fusion(q, d, tid, len(grid)).fused.backward(g)
    def with_opt():
        fwd_bwd(); opt.step(); opt.zero_grad(set_to_none=True); q.grad = d.grad = None
    runs = B.interleaved({"fwd_bwd": fwd_bwd, "fwd_bwd_adamw": with_opt}, repeats=repeats, warmup=2)
    return {k: B.best_ms(v) for k, v in runs.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="tiny,demo,small")
    ap.add_argument("--seconds", default="dinov2", help="second-encoder families, comma-separated (dinov2, dinov3, siglip2, siglip)")
    ap.add_argument("--batch-size", type=int, default=8, help="samples (one image each) per step")
    ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds; the fastest run of each variant counts")
    ap.add_argument("--min-seconds", type=float, default=20, help="keep running rounds this long (per size)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny and demo sizes, 3 rounds, 3 s")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.quick: a.sizes, a.repeats, a.min_seconds = "tiny,demo", 3, 3
    state = B.setup(a.threads)
    processor = build_processor(max_pixels=64 * 28 * 28)
    samples = B.shapes_samples(processor, a.batch_size)
    batch = B.model_inputs(PaddedCollator(processor)(samples))
    shape = {"images": len(batch["image_grid_thw"]), "patches": batch["pixel_values"].shape[0],
             "image_tokens": batch["pixel_values"].shape[0] // 4, "seq_len": batch["input_ids"].shape[1],
             "real_tokens": int(batch["attention_mask"].sum())}
    results = []
    for size, second in [(z, f) for f in a.seconds.split(",") for z in a.sizes.split(",")]:
        fused, stock = B.model_pair(size, second=second)
        fused.train(); stock.train()
        dinov2 = copy.deepcopy(fused.model.dinov2).train()          # the same weights, outside the fused model
        opt_f = torch.optim.AdamW(fused.parameters(), 1e-4)
        opt_s = torch.optim.AdamW(list(stock.parameters()) + list(dinov2.parameters()), 1e-4)
        opt_q = torch.optim.AdamW(stock.parameters(), 1e-4)
        steps = {"fused": B.fused_step(fused, opt_f, batch),
                 "stock+dinov2": B.stock_plus_dinov2_step(stock, dinov2, opt_s, batch, one_backward=True),
                 "stock+dinov2 (two backwards)": B.stock_plus_dinov2_step(stock, dinov2, opt_s, batch),
                 "stock": B.fused_step(stock, opt_q, batch)}
        runs = B.interleaved(steps, repeats=a.repeats, warmup=1, min_seconds=a.min_seconds)
        best = {k: B.best_ms(v) for k, v in runs.items()}
        peaks = {k: B.peak_alloc_mb(f) for k, f in steps.items()}
        alone = fusion_alone(fused, batch, max(a.repeats, 10))
        prof = B.breakdown(fused, steps["fused"], memory=False, repeats=3)
        comps = {"fused": B.n_params(fused), "fusion": B.n_params(fused.model.fusion),
                 "dinov2": B.n_params(fused.model.dinov2), "stock": B.n_params(stock)}
        r = {"size": size, "second": second, "params": comps, "step_ms": best, "step_ms_median": {k: B.median_ms(v) for k, v in runs.items()},
             "fused_over_stock_plus_dinov2": round(best["fused"] / best["stock+dinov2"], 4),
             "fused_over_stock": round(best["fused"] / best["stock"], 4),
             "fusion_share_by_difference": round((best["fused"] - best["stock+dinov2"]) / best["fused"], 4),
             "fused_over_stock_plus_dinov2_paired_median": B.paired_ratio(runs, "fused", "stock+dinov2"),
             "fusion_share_by_paired_difference": round(1 - 1 / B.paired_ratio(runs, "fused", "stock+dinov2"), 4),
             "fused_over_two_backwards_paired_median": B.paired_ratio(runs, "fused", "stock+dinov2 (two backwards)"),
             "peak_alloc_mb": peaks,
             "rounds": len(runs["fused"]),
             "fusion_alone_ms": alone, "fusion_share_alone": round(alone["fwd_bwd_adamw"] / best["fused"], 4),
             "fusion_share_profiled": prof["components"]["fusion"]["share"], "profile": prof}
        results.append(r)
        print(f"{size} + {second}: fused {best['fused']:.1f} ms, stock+dinov2 {best['stock+dinov2']:.1f} ms, stock {best['stock']:.1f} ms; "
              f"fusion alone {alone['fwd_bwd_adamw']:.2f} ms", flush=True)
    summary = {**B.metadata("bench_fusion_overhead", state, a), "batch": shape, "results": results}
    out = B.write_result("fusion_overhead" if a.seconds == "dinov2" else "fusion_overhead_seconds", summary, a.out)
    print(f"\nbatch: {shape['images']} images, {shape['patches']} patches ({shape['image_tokens']} image tokens), "
          f"{shape['real_tokens']} real tokens in {shape['images']}x{shape['seq_len']} rows; {torch.get_num_threads()} thread\n")
    rows = [{"size": f"{r['size']} + {r['second']}", "fused": r["step_ms"]["fused"], "stock+dinov2": r["step_ms"]["stock+dinov2"],
             "two": r["step_ms"]["stock+dinov2 (two backwards)"],
             "stock": r["step_ms"]["stock"], "ratio": r["fused_over_stock_plus_dinov2"],
             "by_diff": f"{r['fusion_share_by_difference']:.1%}", "paired": f"{r['fusion_share_by_paired_difference']:.1%}",
             "alone": f"{r['fusion_share_alone']:.1%}",
             "profiled": f"{r['fusion_share_profiled']:.1%}"} for r in results]
    print(B.md_table(rows, list(rows[0]), ["size", "fused ms", "stock+DINOv2 ms (one backward)", "stock+DINOv2 ms (two backwards)",
                                           "stock ms", "fused / (stock+DINOv2)",
                                           "fusion share (difference of fastest)", "fusion share (paired median)",
                                           "fusion share (alone)", "fusion share (profiler)"]))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

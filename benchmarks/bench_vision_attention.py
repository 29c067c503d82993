"""Qwen2.5-VL's vision attention without flash-attn: transformers' per-window / per-image `sdpa` loop against
`BatchedVisionAttention` (one call per distinct sequence length), forward + backward of the vision tower.

Cases: the demo batch (16 images of 84 px, the demo's tiny tower); a mixed batch of the shapes set (112-224 px);
and the real Qwen2.5-VL-3B/7B block width (1280, 16 heads, 112-px windows; 2 blocks: one windowed, one full) on
4 images of 448 px, random weights. Outputs are compared (max abs diff) before timing. On a GPU the loop also costs
one kernel launch per window per block; this CPU figure is the lower bound of what batching saves.

usage: OMP_NUM_THREADS=2 python benchmarks/bench_vision_attention.py [--threads 2] [--repeats 10] [--quick]
"""
import argparse
import torch
import _bench as B
from transformers import Qwen2_5_VLForConditionalGeneration
from dual_vision_nb.encoders import BatchedVisionAttention, Qwen2_5_VLVisionAttention, tiny_qwen2_5_vl_config


def tower(**vision):
    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration(tiny_qwen2_5_vl_config(**vision)).model.visual.train()


def set_attention(vis, cls):
    for m in vis.modules():
        if isinstance(m, Qwen2_5_VLVisionAttention): m.__class__ = cls


def case(name, vis, grids, repeats):
    thw = torch.tensor([[1, h, w] for h, w in grids])
    x = torch.randn(int(thw.prod(-1).sum()), 3 * 2 * 14 * 14)
    outs = {}
    for label, cls in (("loop", Qwen2_5_VLVisionAttention), ("batched", BatchedVisionAttention)):
        set_attention(vis, cls)
        with torch.no_grad(): outs[label] = vis(x, grid_thw=thw).pooler_output
    fns = {}
    for label, cls in (("loop", Qwen2_5_VLVisionAttention), ("batched", BatchedVisionAttention)):
        def step(cls=cls):
            set_attention(vis, cls); vis.zero_grad(set_to_none=True)
            vis(x, grid_thw=thw).pooler_output.square().mean().backward()
        fns[label] = step
    runs = B.interleaved(fns, repeats=repeats, warmup=2)
    row = {"case": name, "images": len(grids), "patches": x.shape[0], "loop_ms": B.best_ms(runs["loop"]),
           "batched_ms": B.best_ms(runs["batched"]), "max_abs_diff": (outs["loop"] - outs["batched"]).abs().max().item()}
    row["batched_over_loop"] = round(row["batched_ms"] / row["loop_ms"], 4)
    print(row, flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.quick: a.repeats = 3
    state = B.setup(a.threads)
    demo = dict(vision_hidden_size=64, vision_depth=2, vision_num_heads=2, vision_intermediate_size=128)
    rows = [case("demo: 16 x 84 px, demo tower", tower(**demo), [(6, 6)] * 16, a.repeats),
            case("mixed: 16 shapes-set sizes, demo tower", tower(**demo),
                 [(h, w) for h in (8, 12, 16) for w in (8, 12, 16)][:8] * 2, a.repeats)]
    if not a.quick:
        real = dict(vision_hidden_size=1280, vision_depth=2, vision_num_heads=16, vision_intermediate_size=3420, window_size=112)
        rows.append(case("real width (1280, 16 heads): 4 x 448 px, 2 blocks", tower(**real), [(32, 32)] * 4, max(3, a.repeats // 3)))
    out = B.write_result("vision_attention", {**B.metadata("bench_vision_attention", state, a), "cases": rows}, a.out)
    print()
    print(B.md_table(rows, ["case", "patches", "loop_ms", "batched_ms", "batched_over_loop", "max_abs_diff"],
                     ["case", "patches", "transformers loop ms", "batched ms", "batched / loop", "max abs diff"]))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

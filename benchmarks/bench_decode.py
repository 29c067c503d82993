"""Per-token decode time and prefill latency: the fused model vs stock Qwen2.5-VL with the same weights.

Greedy generation with the KV cache, exactly `--new-tokens` new tokens (`min_new_tokens` forces the length). A logits
processor stamps the time of every generation step: the first stamp ends the prefill (image processing is done
before; prefill = both encoders, the fusion and the LM over the prompt), the intervals between the later stamps are
decode steps (one LM step each; the encoders never run after prefill, which the benchmark also counts with forward
hooks). Fused, stock and a copy of stock (the control: two identical models differ by memory placement alone, which
on this machine moves a decode step by a few %) alternate, at least `--repeats` rounds; the fastest round of each
counts, and the median over rounds of the paired ratio is recorded too. Goal: decode ratio <= 1.05.

usage: OMP_NUM_THREADS=1 python benchmarks/bench_decode.py [--sizes tiny,demo,small] [--batch-sizes 1,4] [--new-tokens 64] [--min-seconds 6] [--quick]
"""
import argparse, copy, time
import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList
import _bench as B
from dual_vision_nb.data import encode_messages, load_records, make_shapes_dataset, record_to_messages
from dual_vision_nb.batching import PaddedCollator
from dual_vision_nb.encoders import build_processor


class Stamps(LogitsProcessor):
    "Records perf_counter() at every generation step."
    def __init__(self): self.t = []
    def __call__(self, input_ids, scores):
        self.t.append(time.perf_counter()); return scores


def prompts(processor, n, seed=0):
    "n generation prompts (one demo image + a question each), left-padded into one batch."
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        paths = make_shapes_dataset(d, n_train=0, n_val=n, seed=seed)
        recs = load_records(paths["val"])[0][:n]
        encs = [encode_messages(record_to_messages(r)[:-1], processor, add_generation_prompt=True) for r in recs]
    return PaddedCollator(processor, padding_side="left")(encs)


def generate_timed(model, inputs, new_tokens):
    st = Stamps()
    t0 = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                         logits_processor=LogitsProcessorList([st]))
    t_end = time.perf_counter()
    steps = np.diff(st.t)                             # decode steps between consecutive logits
    return {"prefill_s": st.t[0] - t0, "decode_s": steps, "total_s": t_end - t0, "n_new": out.shape[1] - inputs["input_ids"].shape[1]}


def paired(runs, a, b):
    "Median over rounds of a's mean decode step over b's (rounds are adjacent in time)."
    return round(float(np.median([np.mean(x["decode_s"]) / np.mean(y["decode_s"]) for x, y in zip(runs[a], runs[b])])), 4)


def encoder_calls(model, inputs, new_tokens):
    "Forward calls of the vision tower and DINOv2 during one generate() (contract 4: once, before prefill)."
    calls = {"qwen_vision": 0, "dinov2": 0}
    hooks = []
    for name, mod in (("qwen_vision", model.model.visual), ("dinov2", getattr(model.model, "dinov2", None))):
        if mod is not None:
            hooks.append(mod.register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1)))
    with torch.no_grad(): model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    for h in hooks: h.remove()
    return calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="tiny,demo,small")
    ap.add_argument("--batch-sizes", default="1,4")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5, help="rounds at least (fused and stock alternate)")
    ap.add_argument("--min-seconds", type=float, default=6, help="keep running rounds this long (per size and batch)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny and demo sizes, batch 1, 32 tokens, 3 rounds")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.quick: a.sizes, a.batch_sizes, a.new_tokens, a.repeats, a.min_seconds = "tiny,demo", "1", 32, 3, 1
    state = B.setup(a.threads)
    processor = build_processor(max_pixels=64 * 28 * 28)
    batches = {bs: {k: v for k, v in prompts(processor, bs).items() if k in B.MODEL_KEYS} for bs in map(int, a.batch_sizes.split(","))}
    results = []
    for size in a.sizes.split(","):
        fused, stock = B.model_pair(size)
        fused.eval(); stock.eval()
        control = copy.deepcopy(stock).eval()         # the noise floor: two identical stock models, placed apart in memory
        for bs, inputs in batches.items():
            with torch.no_grad():
                same = torch.equal(fused.generate(**inputs, max_new_tokens=8, do_sample=False, encoder_mode="qwen"),
                                   stock.generate(**inputs, max_new_tokens=8, do_sample=False))
                runs = {"fused": [], "stock": [], "stock_copy": []}
                order = [("fused", fused), ("stock", stock), ("stock_copy", control)]
                for k, m in order: generate_timed(m, inputs, 4)      # warm-up
                t_start = time.perf_counter()
                while len(runs["stock"]) < a.repeats or time.perf_counter() - t_start < a.min_seconds:
                    for k, m in order: runs[k].append(generate_timed(m, inputs, a.new_tokens))
                    order.reverse()                   # fused, stock, copy, then copy, stock, fused, ...
            calls = encoder_calls(fused, inputs, 8)
            per = {}
            for k, rs in runs.items():
                mean_decode = [float(np.mean(r["decode_s"])) for r in rs]
                per[k] = {"decode_ms_per_token": round(1000 * min(mean_decode), 3),
                          "decode_ms_per_token_median_round": round(1000 * float(np.median(mean_decode)), 3),
                          "prefill_ms": round(1000 * min(r["prefill_s"] for r in rs), 3),
                          "total_ms": round(1000 * min(r["total_s"] for r in rs), 2), "new_tokens": rs[0]["n_new"]}
            r = {"size": size, "batch_size": bs, "prompt_len": inputs["input_ids"].shape[1],
                 "image_tokens": inputs["pixel_values"].shape[0] // 4, **{f"{k}": v for k, v in per.items()},
                 "decode_ratio": round(per["fused"]["decode_ms_per_token"] / per["stock"]["decode_ms_per_token"], 4),
                 "decode_ratio_paired_median": paired(runs, "fused", "stock"),
                 "control_decode_ratio": round(per["stock_copy"]["decode_ms_per_token"] / per["stock"]["decode_ms_per_token"], 4),
                 "control_decode_ratio_paired_median": paired(runs, "stock_copy", "stock"),
                 "prefill_ratio": round(per["fused"]["prefill_ms"] / per["stock"]["prefill_ms"], 4),
                 "rounds": len(runs["stock"]), "encoder_calls_per_generate": calls, "qwen_mode_generates_like_stock": same}
            results.append(r)
            print(f"{size} bs={bs}: decode {per['fused']['decode_ms_per_token']:.2f} vs {per['stock']['decode_ms_per_token']:.2f} "
                  f"ms/token, prefill {per['fused']['prefill_ms']:.1f} vs {per['stock']['prefill_ms']:.1f} ms", flush=True)
    summary = {**B.metadata("bench_decode", state, a), "results": results}
    out = B.write_result("decode", summary, a.out)
    print(f"\ngreedy, KV cache, {a.new_tokens} new tokens, {torch.get_num_threads()} thread; fastest round of each "
          f"(>= {a.repeats} rounds, >= {a.min_seconds:g} s per row)\n")
    rows = [{"size": r["size"], "bs": r["batch_size"], "fd": r["fused"]["decode_ms_per_token"], "sd": r["stock"]["decode_ms_per_token"],
             "dr": r["decode_ratio"], "drp": r["decode_ratio_paired_median"], "ctl": r["control_decode_ratio_paired_median"], "fp": r["fused"]["prefill_ms"], "sp": r["stock"]["prefill_ms"], "pr": r["prefill_ratio"],
             "calls": "{qwen_vision}/{dinov2}".format(**r["encoder_calls_per_generate"])} for r in results]
    print(B.md_table(rows, list(rows[0]), ["size", "batch", "fused ms/token", "stock ms/token", "decode ratio", "decode ratio (paired median)",
                                           "control: stock copy / stock (paired)",
                                           "fused prefill ms", "stock prefill ms", "prefill ratio", "encoder calls (Qwen/DINOv2)"]))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

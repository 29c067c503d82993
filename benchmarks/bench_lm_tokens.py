"""What the language model computes that nobody reads: padding, and logits at unsupervised positions.

On `demo_config`'s model and batches of the demo set (one conversation per image, 141-231 tokens):

1. Padding: the share of token slots that are padding in random batches (`ResumableSampler`) and in length-grouped
   batches (`training.group_by_length`, `LengthGroupedSampler`), over the first `--batches` batches of an epoch.
2. Training-step time (the trainer's `compute_loss` + backward + fused AdamW), interleaved, for the four combinations
   of {random, grouped} batches x {logits at every position, logits at `supervised_positions` only}; the losses of the
   two logits paths on the same batches (they must agree to float rounding).
3. At Qwen2.5-VL's vocabulary (151,936): the bytes of one demo batch's fp32 logits at every position against at the
   supervised ones, and the time of the LM head + cross-entropy (forward + backward) on one batch's hidden states, both
   ways (`--real-vocab-rows` rows of the batch, to keep it short on a CPU).

usage: OMP_NUM_THREADS=2 python benchmarks/bench_lm_tokens.py [--threads 2] [--batches 24] [--repeats 5] [--quick]
"""
import argparse, tempfile, time
from pathlib import Path
import torch, torch.nn.functional as F
import _bench as B
from dual_vision_nb.config import DVNConfig
from dual_vision_nb.demo import DEMO_DATA, demo_config
from dual_vision_nb.recipe import build_run
from dual_vision_nb.data import make_shapes_dataset
from dual_vision_nb.losses import supervised_positions

QWEN_VOCAB = 151_936


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--real-vocab-rows", type=int, default=4, help="rows of a demo batch for the 151,936-vocab case")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.quick: a.batches, a.repeats, a.n_train, a.real_vocab_rows = 6, 2, 400, 2
    state = B.setup(a.threads)
    d = Path(tempfile.mkdtemp(prefix="bench_lm_tokens"))
    data = make_shapes_dataset(d / "data", n_train=a.n_train, n_val=20, **DEMO_DATA)
    learners, batches, res = {}, {}, {"batches": a.batches}
    for grouped in (False, True):
        cfg = demo_config(d / f"run{int(grouped)}", data, num_epochs=1, group_by_length=grouped)
        cfg["logging"].update(progress_bar=False, tensorboard=False)
        t = time.perf_counter(); learn = build_run(DVNConfig.from_dict(cfg))
        res.setdefault("build_run_seconds", {})["grouped" if grouped else "random"] = round(time.perf_counter() - t, 2)
        it = iter(learn.train_dl)
        batches[grouped] = [next(it) for _ in range(a.batches)]
        learners[grouped] = learn
    # 1: padding
    res["padding"] = {}
    for grouped, bs in batches.items():
        real = sum(int(b["attention_mask"].sum()) for b in bs); slots = sum(b["attention_mask"].numel() for b in bs)
        sup = sum(int(supervised_positions(b["labels"]).sum()) for b in bs)
        res["padding"]["grouped" if grouped else "random"] = {
            "real_tokens": real, "token_slots": slots, "padding_waste": round(1 - real / slots, 4),
            "supervised_share_of_slots": round(sup / slots, 4), "mean_padded_length": round(slots / sum(b["input_ids"].shape[0] for b in bs), 1)}
    # 2: step time, the four combinations on the same model weights (lr 0: the weights stay as they are)
    learn = learners[False]; model = learn.unwrapped
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, fused=True)
    def step_fn(grouped, selected):
        def run():
            learn.loss_func.reads_supervised_logits = selected
            for b in batches[grouped]:
                n = (b["labels"][:, 1:] != -100).sum().float()
                out = learn.compute_loss(b, n); out["loss"].backward(); opt.step(); opt.zero_grad()
        return run
    combos = {f"{'grouped' if g else 'random'}+{'supervised' if s else 'all'}_logits": step_fn(g, s)
              for g in (False, True) for s in (False, True)}
    runs = B.interleaved(combos, repeats=a.repeats)
    res["step_ms"] = {k: round(B.median_ms(v) / a.batches, 2) for k, v in runs.items()}
    res["step_ms_best"] = {k: round(B.best_ms(v) / a.batches, 2) for k, v in runs.items()}
    base = "random+all_logits"
    res["speedup_over_random_all"] = {k: round(B.paired_ratio(runs, base, k), 3) for k in runs if k != base}
    diffs = []
    with torch.no_grad():
        for b in batches[False][:4]:
            n = (b["labels"][:, 1:] != -100).sum().float()
            learn.loss_func.reads_supervised_logits = True; l1 = learn.compute_loss(b, n)["loss"]
            learn.loss_func.reads_supervised_logits = False; l2 = learn.compute_loss(b, n)["loss"]
            diffs.append(abs(float(l1) - float(l2)))
    del learn.loss_func.reads_supervised_logits
    res["loss_max_abs_diff_supervised_vs_all"] = max(diffs)
    # 3: Qwen's vocabulary: bytes and LM head + CE time for a demo batch's hidden states
    b = batches[False][0]; rows = slice(0, a.real_vocab_rows)
    labels = b["labels"][rows]; keep = supervised_positions(labels)
    hidden = torch.randn(*labels.shape, model.config.text_config.hidden_size)
    head = torch.nn.Linear(hidden.shape[-1], QWEN_VOCAB, bias=False)
    targets = F.pad(labels, (0, 1), value=-100)[:, 1:]
    def all_positions():
        h = hidden.clone().requires_grad_()
        F.cross_entropy(head(h).float().flatten(0, 1), targets.flatten(), ignore_index=-100).backward()
    def supervised_only():
        h = hidden.clone().requires_grad_()
        F.cross_entropy(head(h[keep]).float(), targets[keep]).backward()
    r = B.interleaved({"all": all_positions, "supervised": supervised_only}, repeats=2 if a.quick else 3)
    n_all, n_sup = b["labels"].numel(), int(supervised_positions(b["labels"]).sum())   # the whole first batch
    res["qwen_vocab"] = {"vocab": QWEN_VOCAB, "rows_timed": a.real_vocab_rows, "positions_timed": labels.numel(),
                         "supervised_timed": int(keep.sum()),
                         "lm_head_ce_fwd_bwd_ms": {k: B.best_ms(v) for k, v in r.items()},
                         "one_batch_positions": n_all, "one_batch_supervised": n_sup,
                         "one_batch_fp32_logits_gb": {"all": round(n_all * QWEN_VOCAB * 4 / 1e9, 3),
                                                      "supervised": round(n_sup * QWEN_VOCAB * 4 / 1e9, 3)}}
    summary = {**B.metadata("bench_lm_tokens", state, a), **res}
    out = B.write_result("lm_tokens", summary, a.out)
    print(B.md_table([{"batches": k, **v} for k, v in res["padding"].items()],
                     ["batches", "padding_waste", "supervised_share_of_slots", "mean_padded_length"]))
    print(B.md_table([{"combination": k, "ms_per_step": v, "speedup": res["speedup_over_random_all"].get(k, 1.0)}
                      for k, v in res["step_ms"].items()], ["combination", "ms_per_step", "speedup"]))
    q = res["qwen_vocab"]
    print(f"\nloss, supervised vs all logits: max abs diff {res['loss_max_abs_diff_supervised_vs_all']:.2e}")
    print(f"at vocab {QWEN_VOCAB:,}: one batch's fp32 logits {q['one_batch_fp32_logits_gb']['all']} GB at every position, "
          f"{q['one_batch_fp32_logits_gb']['supervised']} GB at the supervised ones; LM head + CE fwd+bwd on "
          f"{a.real_vocab_rows} rows: {q['lm_head_ce_fwd_bwd_ms']['all']:.0f} ms vs {q['lm_head_ce_fwd_bwd_ms']['supervised']:.0f} ms")
    print(f"\nwrote {out} ({summary['wall_seconds']} s, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()

"""The library's own hot paths, before and after this round of fixes, and the alternatives measured and not adopted.

1. Host reads (tensor -> Python conversions: `.tolist()`, `.item()`, `int()`, `bool()`; each one a host-device sync on
   a GPU) in one forward of the fused model, now and with the implementations of commit d66007f (kept verbatim below
   as `_before_*`), against stock Qwen2.5-VL's forward.
2. CPU time of one fused training step, now vs before, interleaved (the reads cost microseconds on a CPU: ~equal).
3. The DINOv2 alignment glue (rebuilding images from Qwen's patches, re-normalising, stacking same-size images,
   merging 2x2) next to the DINOv2 forward + backward it feeds; and the alternative of ONE padded DINOv2 forward for
   all images (per-image position embeddings, attention mask) instead of one forward per distinct size.
4. Stock code, left alone: Qwen's `Conv3d` patch embedding against the same product as one matmul.
5. The trainer's optimizer step (AdamW defaults) against foreach and fused AdamW; 6. the data pipeline's cost per
   batch (dataset + collator), which the trainer pays inside the loop with `num_workers=0`; 7. the trainer loop on
   `demo_config`: the time per step of each callback event, the data loader, forward, backward, clipping, with the data
   in the training process and with one DataLoader worker. 8. Held-out evaluation (`answer_accuracy`): the fusion
   weights read from `generate`'s own prefill against the earlier extra forward of every prompt (encoders twice).

usage: OMP_NUM_THREADS=1 python benchmarks/bench_hotpaths.py [--repeats 15] [--quick]
"""
import argparse, copy
import torch, torch.nn.functional as F
from torch import Tensor
import _bench as B
import dual_vision_nb.fusion as fusion_mod
from dual_vision_nb.batching import PaddedCollator
from dual_vision_nb.encoders import (CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, build_processor,
                                     dinov2_merged_tokens, merge_2x2, renormalise, tiny_dinov2_config)


# ------------------------------------------------------------------ the implementations of commit d66007f, verbatim
def _before_rebuild_images(pixel_values, image_grid_thw, patch_size=14, merge_size=2, temporal_patch_size=2):
    if (image_grid_thw[:, 0] != 1).any(): raise ValueError("only still images (grid t == 1) can be rebuilt; videos are not supported")
    sizes = image_grid_thw.prod(-1).tolist()
    if sum(sizes) != pixel_values.shape[0]:
        raise ValueError(f"pixel_values has {pixel_values.shape[0]} patches but image_grid_thw describes {sum(sizes)}")
    out = []
    for patches, (t, h, w) in zip(pixel_values.split(sizes), image_grid_thw.tolist()):
        x = patches.view(h // merge_size, w // merge_size, merge_size, merge_size, 3, temporal_patch_size,
                         patch_size, patch_size)[..., 0, :, :]
        out.append(x.permute(4, 0, 2, 5, 1, 3, 6).reshape(3, h * patch_size, w * patch_size))
    return out


def _before_dinov2_merged_tokens(dinov2, pixel_values, image_grid_thw, qwen_mean=CLIP_MEAN, qwen_std=CLIP_STD,
                                 dinov2_mean=IMAGENET_MEAN, dinov2_std=IMAGENET_STD):
    images = _before_rebuild_images(pixel_values, image_grid_thw)
    grids = [tuple(g) for g in image_grid_thw[:, 1:].tolist()]
    n_skip = 1 + getattr(dinov2.config, "num_register_tokens", 0)
    dtype = next(dinov2.parameters()).dtype
    out = [None] * len(images)
    for grid in dict.fromkeys(grids):
        idx = [i for i, g in enumerate(grids) if g == grid]
        x = renormalise(torch.stack([images[i] for i in idx]).float(), qwen_mean, qwen_std, dinov2_mean, dinov2_std)
        hidden = dinov2(pixel_values=x.to(dtype)).last_hidden_state[:, n_skip:]
        merged = merge_2x2(hidden, *grid)
        for j, i in enumerate(idx): out[i] = merged[j]
    return torch.cat(out)


def _before_get_image_features(self, pixel_values, image_grid_thw=None, encoder_mode=None, **kwargs):
    mode = fusion_mod.check_encoder_mode(encoder_mode)
    if image_grid_thw is None: raise ValueError("image_grid_thw is required with pixel_values")
    n_images = image_grid_thw.shape[0]
    counts = image_grid_thw.prod(-1) // self.visual.spatial_merge_size ** 2
    n_tokens = pixel_values.shape[0] // self.visual.spatial_merge_size ** 2
    token_image_ids = torch.repeat_interleave(torch.arange(n_images, device=counts.device), counts, output_size=n_tokens)
    q = None if mode == "dinov2" else self.visual(pixel_values.type(self.visual.dtype), grid_thw=image_grid_thw).pooler_output
    c = self.config
    d = None if mode == "qwen" else _before_dinov2_merged_tokens(self.dinov2, pixel_values, image_grid_thw, c.qwen_image_mean,
                                                                 c.qwen_image_std, c.dinov2_image_mean, c.dinov2_image_std)
    if d is not None and q is not None: d = d.to(q.dtype)
    fo = self.fusion(q, d, token_image_ids, n_images, mode)
    return fusion_mod.DualVisionImageFeatures(pooler_output=torch.split(fo.fused, counts.tolist()), token_image_ids=token_image_ids,
        **{k: getattr(fo, k) for k in fusion_mod._FEATURE_FIELDS if k != "token_image_ids"})


def _before_check_image_tokens(self, input_ids, image_grid_thw, image=None):
    if torch.compiler.is_compiling() or image_grid_thw is None: return
    n_text = int((input_ids == self.config.image_token_id).sum())
    n_feat = int(image_grid_thw.prod(-1).sum()) // self.model.visual.spatial_merge_size ** 2
    if n_text != n_feat: raise ValueError("mismatch")


def as_before(model):
    "A deep copy of `model` running the d66007f implementations."
    m = copy.deepcopy(model)
    m.model.get_image_features = _before_get_image_features.__get__(m.model)
    m._check_image_tokens = _before_check_image_tokens.__get__(m)
    return m


# ------------------------------------------------------------------ the alternative: one padded DINOv2 forward
def dinov2_one_padded_forward(dinov2, pixel_values, image_grid_thw):
    """All images in ONE DINOv2 forward: patch embedding as a matmul on Qwen's patches (in Qwen's merged order, with
    the CLIP -> ImageNet renormalisation folded into the weights), each image's own interpolated position embeddings,
    padded to the longest image with an attention mask. Same tokens as `dinov2_merged_tokens` (to ~1e-6)."""
    from transformers.masking_utils import create_bidirectional_mask
    emb = dinov2.embeddings
    conv = emb.patch_embeddings.projection
    D = conv.out_channels
    a = torch.tensor(CLIP_STD) / torch.tensor(IMAGENET_STD)
    b = (torch.tensor(CLIP_MEAN) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    W = conv.weight.view(D, 3, -1)
    tok = F.linear(pixel_values.view(pixel_values.shape[0], 3, 2, -1)[:, :, 0].reshape(pixel_values.shape[0], -1),
                   (W * a.view(1, 3, 1)).view(D, -1), conv.bias + (W.sum(-1) * b).sum(-1))
    grids = image_grid_thw.tolist()
    seqs, pos = [], {}
    for x, (t, h, w) in zip(tok.split([t * h * w for t, h, w in grids]), grids):
        if (h, w) not in pos:
            p = emb.interpolate_pos_encoding(emb.position_embeddings.new_empty(1, h * w + 1, D), h * 14, w * 14)
            pos[(h, w)] = p[0, :1], p[0, 1:].view(h // 2, 2, w // 2, 2, D).permute(0, 2, 1, 3, 4).reshape(h * w, D)
        c, pp = pos[(h, w)]
        seqs.append(torch.cat([emb.cls_token[0] + c, x + pp]))
    xs = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    mask = (torch.arange(xs.shape[1])[None] < torch.tensor([len(s) for s in seqs])[:, None]).long()
    hs = dinov2.layernorm(dinov2.encoder(xs, attention_mask=create_bidirectional_mask(
        config=dinov2.config, inputs_embeds=xs, attention_mask=mask)).last_hidden_state)
    return torch.cat([hs[i, 1:len(s)] for i, s in enumerate(seqs)]).view(-1, 4 * D)


def glue_only(pixel_values, image_grid_thw):
    "The alignment's work outside DINOv2 itself (rebuild, renormalise, stack per size)."
    from dual_vision_nb.encoders import grid_list, rebuild_images
    thw = grid_list(image_grid_thw)
    images = rebuild_images(pixel_values, thw)
    grids = [(h, w) for _, h, w in thw]
    for g in dict.fromkeys(grids):
        renormalise(torch.stack([images[i] for i, x in enumerate(grids) if x == g]).float(), CLIP_MEAN, CLIP_STD,
                    IMAGENET_MEAN, IMAGENET_STD)


def trainer_loop_costs(n_steps, num_workers=0):
    "Time per step in each callback event, the data loader and the model step of `build_run(demo_config)` for n steps."
    import tempfile, time
    from pathlib import Path
    from transformers.utils import logging as hf_logging
    from dual_vision_nb.config import DVNConfig
    from dual_vision_nb.demo import DEMO_DATA, demo_config
    from dual_vision_nb.evaluation import _generate_with_fusion_weights
    from dual_vision_nb.fusion import MODEL_INPUTS
    from dual_vision_nb.models import build_model, build_processor_for
    from dual_vision_nb.recipe import build_run
    from dual_vision_nb.trainer import Callback, _EVENTS
    from dual_vision_nb.data import make_shapes_dataset
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as d:
        data = make_shapes_dataset(Path(d) / "data", n_train=200, n_val=20, seed=0, **DEMO_DATA)
        cfg = demo_config(Path(d) / "run", data, max_steps=n_steps, num_workers=num_workers)
        cfg["logging"]["progress_bar"] = False
        learn = build_run(DVNConfig.from_dict(cfg))
        spent = {}
        def timed(name, f):
            def g(*args, **kw):
                t = time.perf_counter()
                try: return f(*args, **kw)
                finally: spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
            return g
        for cb in learn.cbs:
            for ev in _EVENTS:
                if ev in ("before_fit", "after_fit", "before_stage", "after_stage", "after_epoch", "before_epoch"): continue
                if hasattr(type(cb), ev): setattr(cb, ev, timed(f"{type(cb).__name__}.{ev}", getattr(cb, ev)))
        learn.compute_loss = timed("forward (compute_loss)", learn.compute_loss)
        learn.accelerator.backward = timed("backward", learn.accelerator.backward)
        learn.accelerator.clip_grad_norm_ = timed("clip_grad_norm_", learn.accelerator.clip_grad_norm_)
        learn.step_batches = (lambda sb: lambda: _timed_iter(sb(), spent))(learn.step_batches)
        class Clock(Callback):
            order = -1000                                     # first in before_step, first in after_step
            t = []
            def before_step(self): self.t.append(("b", time.perf_counter()))
            def after_step(self): self.t.append(("a", time.perf_counter()))
        clock = Clock(); clock.learn = learn; learn.cbs = sorted(learn.cbs + [clock], key=lambda c: c.order)
        learn.fit()
    steps = max(1, learn.step)
    # from the first step's start to the last step's end (fit's set-up and the final checkpoint left out); the first
    # step's data loading comes before it, so `data` counts steps - 1 loads inside the window plus the first
    first = next(t for k, t in clock.t if k == "b"); last = [t for k, t in clock.t if k == "a"][-1]
    wall = last - first + spent.get("data (loader + collate)", 0.0) / steps
    rows = {k: round(1000 * v / steps, 3) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
    rows["rest (optimizer + scheduler step, zero_grad, loop)"] = round(1000 * wall / steps - sum(rows.values()), 3)
    return {"steps": steps, "num_workers": num_workers, "wall_ms_per_step": round(1000 * wall / steps, 2), "ms_per_step": rows}


def eval_pass_costs(repeats=3, n=32):
    "answer_accuracy's batch: generate + a hook on the fusion (now) vs a forward for the weights, then generate (before)."
    import tempfile
    from pathlib import Path
    from dual_vision_nb.config import DVNConfig
    from dual_vision_nb.demo import DEMO_DATA, demo_config
    from dual_vision_nb.evaluation import _generate_with_fusion_weights
    from dual_vision_nb.fusion import MODEL_INPUTS
    from dual_vision_nb.models import build_model, build_processor_for
    from dual_vision_nb.recipe import build_run
    from dual_vision_nb.trainer import Callback, _EVENTS
    from dual_vision_nb.data import make_shapes_dataset, load_records, record_to_messages, encode_messages
    with tempfile.TemporaryDirectory() as d:
        data = make_shapes_dataset(Path(d) / "data", n_train=20, n_val=n, seed=0, **DEMO_DATA)
        cfg = DVNConfig.from_dict(demo_config(Path(d) / "run", data))
        processor = build_processor_for(cfg); model = build_model(cfg, processor).eval()
        recs = load_records(data["val"])[0]
        b = PaddedCollator(processor, padding_side="left")([encode_messages(record_to_messages(r)[:-1], processor,
                                                                            add_generation_prompt=True) for r in recs])
        inputs = {k: b[k] for k in MODEL_INPUTS if k in b}
        kw = dict(max_new_tokens=12, do_sample=False, min_new_tokens=12)        # equal lengths: the same decode both ways
        @torch.no_grad()
        def before(): model(**inputs).fusion_weights; model.generate(**inputs, **kw)
        @torch.no_grad()
        def now(): _generate_with_fusion_weights(model, inputs, **kw)
        r = B.interleaved({"before": before, "now": now}, repeats=repeats)
    return {"batch": n, "new_tokens": 12, "before_ms": B.best_ms(r["before"]), "now_ms": B.best_ms(r["now"])}


def _timed_iter(it, spent):
    import time
    while True:
        t = time.perf_counter()
        try: x = next(it)
        except StopIteration: return
        finally: spent["data (loader + collate)"] = spent.get("data (loader + collate)", 0.0) + time.perf_counter() - t
        yield x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=16, help="shapes-demo samples (images of 112-224 px)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--dinov2-sizes", default="32x2,128x4", help="DINOv2 hidden x layers for the alignment comparison")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--loop-steps", type=int, default=0, help="trainer-loop steps to time (default 48, within the first epoch; --quick skips)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.quick: a.repeats, a.dinov2_sizes, a.batch_size = 5, "32x2", 8
    state = B.setup(a.threads)
    processor = build_processor(max_pixels=64 * 28 * 28)
    batch = B.model_inputs(PaddedCollator(processor)(B.shapes_samples(processor, a.batch_size)))
    pv, grid = batch["pixel_values"], batch["image_grid_thw"]
    n_sizes = len({tuple(g) for g in grid.tolist()})
    res = {"batch": {"images": len(grid), "distinct_sizes": n_sizes, "patches": pv.shape[0]}}

    # 1 + 2: host reads and step time, now vs before
    fused, stock = B.model_pair("demo")
    before = as_before(fused)
    reads = {}
    with torch.no_grad():
        for name, m in (("stock", stock), ("fused_before", before), ("fused_now", fused)):
            with B.HostReads() as h: m(**batch)
            reads[name] = {"total": h.total, **h.counts}
    with B.HostReads() as h1: _before_dinov2_merged_tokens(fused.model.dinov2, pv, grid)
    with B.HostReads() as h2: dinov2_merged_tokens(fused.model.dinov2, pv, grid)
    reads["dinov2_merged_tokens_before"], reads["dinov2_merged_tokens_now"] = h1.total, h2.total
    res["host_reads_per_forward"] = reads
    res["extra_reads_over_stock"] = {"before": reads["fused_before"]["total"] - reads["stock"]["total"],
                                     "now": reads["fused_now"]["total"] - reads["stock"]["total"]}
    for m in (fused, before): m.train()
    steps = {"before": B.fused_step(before, torch.optim.AdamW(before.parameters(), 1e-4), batch),
             "now": B.fused_step(fused, torch.optim.AdamW(fused.parameters(), 1e-4), batch)}
    runs = B.interleaved(steps, repeats=a.repeats, min_seconds=0 if a.quick else 15)
    res["train_step_ms"] = {k: B.best_ms(v) for k, v in runs.items()}
    res["train_step_now_over_before"] = round(min(runs["now"]) / min(runs["before"]), 4)
    res["train_step_now_over_before_paired_median"] = B.paired_ratio(runs, "now", "before")
    print(f"host reads per forward: stock {reads['stock']['total']}, fused before {reads['fused_before']['total']}, "
          f"now {reads['fused_now']['total']}; step {res['train_step_ms']}", flush=True)

    # 3: the alignment glue, and one padded DINOv2 forward instead of one per size
    align = []
    for spec in a.dinov2_sizes.split(","):
        hd, L = map(int, spec.split("x"))
        torch.manual_seed(0)
        from transformers import Dinov2Model
        dino = Dinov2Model(tiny_dinov2_config(hidden_size=hd, num_hidden_layers=L, num_attention_heads=max(2, hd // 64))).train()
        with torch.no_grad():
            diff = (dinov2_merged_tokens(dino, pv, grid) - dinov2_one_padded_forward(dino, pv, grid)).abs().max().item()
        fns = {"per_size_forwards": lambda: dinov2_merged_tokens(dino, pv, grid).square().mean().backward(),
               "one_padded_forward": lambda: dinov2_one_padded_forward(dino, pv, grid).square().mean().backward(),
               "glue_only": lambda: glue_only(pv, grid)}
        r = B.interleaved(fns, repeats=a.repeats if L < 8 else 3)
        row = {"dinov2": spec, **{k: B.best_ms(v) for k, v in r.items()}, "max_abs_diff": diff}
        row["glue_share"] = round(row["glue_only"] / row["per_size_forwards"], 4)
        row["padded_over_per_size"] = round(row["one_padded_forward"] / row["per_size_forwards"], 4)
        align.append(row)
        print(f"DINOv2 {spec}: {row}", flush=True)
    res["alignment"] = align

    # 4: Qwen's Conv3d patch embedding (stock) vs the same product as a matmul
    pe = copy.deepcopy(fused.model.visual.patch_embed).train()
    x = pv.view(-1, 3, 2, 14, 14)
    def conv3d(): pe.proj(x).view(x.shape[0], -1).sum().backward()
    def matmul(): F.linear(x.reshape(x.shape[0], -1), pe.proj.weight.view(pe.proj.weight.shape[0], -1)).sum().backward()
    r = B.interleaved({"conv3d": conv3d, "matmul": matmul}, repeats=a.repeats)
    res["qwen_patch_embed_fwd_bwd_ms"] = {k: B.best_ms(v) for k, v in r.items()}
    res["qwen_patch_embed_share_of_step"] = round(res["qwen_patch_embed_fwd_bwd_ms"]["conv3d"] / res["train_step_ms"]["now"], 4)

    # 5: the optimizer step (the trainer builds torch.optim.AdamW with its defaults): for-loop vs foreach vs fused
    opts = {}
    for impl, kw in (("default", {}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        m = copy.deepcopy(fused).train()
        m(**batch, use_cache=False).loss.backward()
        o = torch.optim.AdamW(m.parameters(), 1e-4, **kw)
        opts[impl] = o
    r = B.interleaved({k: o.step for k, o in opts.items()}, repeats=a.repeats, warmup=2)
    res["adamw_step_ms"] = {k: B.best_ms(v) for k, v in r.items()}

    # 6: the data pipeline (DualVisionDataset.__getitem__ + PaddedCollator), which the trainer runs in the main
    # process by default (num_workers=0): its cost per batch, next to the training step
    import tempfile, time
    from dual_vision_nb.data import DualVisionDataset, make_shapes_dataset
    with tempfile.TemporaryDirectory() as d:
        paths = make_shapes_dataset(d, n_train=a.batch_size, n_val=0, seed=0)
        ds = DualVisionDataset(paths["train"], processor, max_length=512)
        coll = PaddedCollator(processor)
        idx = list(range(len(ds)))
        r = B.interleaved({"getitem_batch": lambda: [ds[i] for i in idx]}, repeats=max(3, a.repeats // 3))
        samples = [ds[i] for i in idx]
        rc = B.interleaved({"collate": lambda: coll(samples)}, repeats=a.repeats)
    res["data_pipeline_ms_per_batch"] = {"getitem": B.best_ms(r["getitem_batch"]), "collate": B.best_ms(rc["collate"]),
                                         "batch_size": len(idx)}
    res["data_share_of_step_plus_data"] = round((res["data_pipeline_ms_per_batch"]["getitem"] + res["data_pipeline_ms_per_batch"]["collate"])
                                                / (res["data_pipeline_ms_per_batch"]["getitem"] + res["data_pipeline_ms_per_batch"]["collate"]
                                                   + res["train_step_ms"]["now"]), 4)

    # 7: the trainer's loop on the demo configuration: what each callback costs per step, next to the step itself
    if not a.quick or a.loop_steps:
        res["trainer_loop"] = trainer_loop_costs(a.loop_steps or 48)                      # data in the training process
        res["trainer_loop_1_worker"] = trainer_loop_costs(a.loop_steps or 48, num_workers=1)   # one DataLoader worker
    res["eval_batch_ms"] = eval_pass_costs(repeats=2 if a.quick else 5)

    summary = {**B.metadata("bench_hotpaths", state, a), **res}
    out = B.write_result("hotpaths", summary, a.out)
    print(f"\n{len(grid)} images of {n_sizes} distinct sizes, {pv.shape[0]} patches; demo-size model; {torch.get_num_threads()} thread\n")
    print(B.md_table([{"what": "host reads / forward (stock Qwen: %d)" % reads["stock"]["total"],
                       "before": reads["fused_before"]["total"], "now": reads["fused_now"]["total"]},
                      {"what": "host reads in dinov2_merged_tokens", "before": reads["dinov2_merged_tokens_before"],
                       "now": reads["dinov2_merged_tokens_now"]},
                      {"what": "train step ms (CPU)", "before": res["train_step_ms"]["before"], "now": res["train_step_ms"]["now"]}],
                     ["what", "before", "now"]))
    print()
    print(B.md_table(align, ["dinov2", "per_size_forwards", "one_padded_forward", "glue_only", "glue_share", "padded_over_per_size"],
                     ["DINOv2 (hidden x layers)", "per-size forwards ms (library)", "one padded forward ms (not adopted)",
                      "glue only ms", "glue share", "padded / per-size"]))
    c = res["qwen_patch_embed_fwd_bwd_ms"]
    print(f"\nQwen patch embedding fwd+bwd (stock Conv3d): {c['conv3d']:.1f} ms ({res['qwen_patch_embed_share_of_step']:.0%} of the step); "
          f"as one matmul: {c['matmul']:.1f} ms")
    o = res["adamw_step_ms"]; dp = res["data_pipeline_ms_per_batch"]
    print(f"AdamW step over the demo model: default {o['default']:.2f} ms, foreach {o['foreach']:.2f} ms, fused {o['fused']:.2f} ms")
    print(f"data pipeline per batch of {dp['batch_size']}: __getitem__ {dp['getitem']:.1f} ms + collate {dp['collate']:.1f} ms "
          f"({res['data_share_of_step_plus_data']:.0%} of step + data when loaded in the training process)")
    if "trainer_loop" in res:
        tl = res["trainer_loop"]
        print(f"\ntrainer loop on demo_config, {tl['steps']} steps, {tl['wall_ms_per_step']:.1f} ms/step wall:")
        print(B.md_table([{"part": k, "ms": v} for k, v in tl["ms_per_step"].items()], ["part", "ms"], ["part", "ms per step"]))
    if "trainer_loop_1_worker" in res:
        print(f"with one DataLoader worker: {res['trainer_loop_1_worker']['wall_ms_per_step']:.1f} ms/step wall")
    ev = res["eval_batch_ms"]
    print(f"held-out evaluation, a batch of {ev['batch']} prompts + {ev['new_tokens']} tokens: {ev['before_ms']:.0f} ms with a "
          f"separate forward for the fusion weights (before), {ev['now_ms']:.0f} ms reading them from generate's prefill (now)")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

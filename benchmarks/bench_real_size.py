"""A real-size dry run on the CPU: Qwen2.5-VL-3B + DINOv2-large built from their published configurations (random
weights, nothing downloaded), bf16, the `efficient_finetuning` recipe (LoRA r=16 on the LM's projections, both towers
frozen, projections and fusion trained in full, activation checkpointing), one training step (forward, backward,
AdamW step) on one 448x448 image with a 64-token answer. Measures peak RSS (sampled every 20 ms, plus ru_maxrss) and
the time of each phase, and compares the step's peak with `dvn_scenarios`' estimate for the same recipe.

    python benchmarks/bench_real_size.py [--qwen 3b] [--dinov2 large] [--threads 2]
"""
import argparse, gc, os, resource, threading, time
from dataclasses import asdict
from _bench import metadata, setup, write_result
import torch

GiB = 2 ** 30


def rss()->int:
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))


class PeakRSS:
    "The highest RSS seen while the block runs (a thread reads /proc/self/status every 20 ms)."
    def __enter__(self):
        self.peak, self._stop = rss(), False
        def watch():
            while not self._stop: self.peak = max(self.peak, rss()); time.sleep(0.02)
        self._t = threading.Thread(target=watch, daemon=True); self._t.start(); return self
    def __exit__(self, *a):
        self._stop = True; self._t.join(); self.peak = max(self.peak, rss())


def sample(model, image_hw=(448, 448), prompt_tokens=24, answer_tokens=64):
    "One chat sample at the model's real token ids: system/question text, the image's slots, a 64-token answer."
    from dual_vision_nb.encoders import build_processor
    from PIL import Image
    import numpy as np
    proc = build_processor(min_pixels=image_hw[0] * image_hw[1], max_pixels=image_hw[0] * image_hw[1])
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (*image_hw, 3), dtype=np.uint8))
    pix = proc.image_processor(images=[img], return_tensors="pt")
    grid = pix["image_grid_thw"]
    n_img = int(grid.prod()) // 4
    c = model.config
    g = torch.Generator().manual_seed(0)
    text = lambda n: torch.randint(1000, 100_000, (n,), generator=g)
    ids = torch.cat([text(prompt_tokens // 2), torch.tensor([c.vision_start_token_id]), torch.full((n_img,), c.image_token_id),
                     torch.tensor([c.vision_end_token_id]), text(prompt_tokens // 2), text(answer_tokens)])[None]
    labels = torch.full_like(ids, -100); labels[0, -answer_tokens:] = ids[0, -answer_tokens:]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": (ids == c.image_token_id).long(),
            "pixel_values": pix["pixel_values"].to(torch.bfloat16), "image_grid_thw": grid, "labels": labels}, n_img


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qwen", default="3b"); ap.add_argument("--dinov2", default="large")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    state = setup(args.threads)
    from dual_vision_nb.config import DVNConfig, FUSION_FIELDS
    from dual_vision_nb.fusion import DualVisionForConditionalGeneration
    from dual_vision_nb.lora import apply_lora
    from dual_vision_nb.models import apply_freeze, param_groups, parameter_table
    from dual_vision_nb.scenarios import encoder_configs, estimate, scenario_config, MEMORY_REGIMES
    cfg = DVNConfig.from_dict(scenario_config("efficient_finetuning"))
    phases, rss_at = {}, {"after_imports": rss()}
    q, d = encoder_configs(args.qwen, args.dinov2)
    t = time.perf_counter()
    with PeakRSS() as build_peak:
        model = DualVisionForConditionalGeneration.from_encoders(q, d, dtype="bfloat16", attn_implementation="sdpa",
                                                                 **{k: getattr(cfg.model, k) for k in FUSION_FIELDS})
        model.activation_checkpointing_enable(); model.disable_input_require_grads()
        model = apply_lora(model, asdict(cfg.lora))
        apply_freeze(model, cfg.freeze_config.settings())
        tc = cfg.training
        groups = param_groups(model, tc.learning_rate, tc.weight_decay, tc.group_lrs, tc.lr_multipliers)
        for gr in groups: gr.pop("param_names")
        opt = torch.optim.AdamW(groups, lr=tc.learning_rate)
    phases["build_s"] = time.perf_counter() - t
    rss_at["after_build"] = rss()
    table = {r["component"]: r for r in parameter_table(model)}
    batch, n_img = sample(model)
    model.train(); gc.collect()
    rss_at["before_step"] = rss()
    with PeakRSS() as step_peak:
        t = time.perf_counter()
        out = model(**batch, use_cache=False)
        phases["forward_s"] = time.perf_counter() - t; t = time.perf_counter()
        out.loss.backward()
        phases["backward_s"] = time.perf_counter() - t; t = time.perf_counter()
        opt.step(); opt.zero_grad(set_to_none=False)
        phases["optimizer_s"] = time.perf_counter() - t
    phases["step_s"] = phases["forward_s"] + phases["backward_s"] + phases["optimizer_s"]
    rss_at["after_step"] = rss()
    est = estimate("efficient_finetuning", args.qwen, args.dinov2, image_hw=(448, 448), text_tokens=int(batch["input_ids"].shape[1]) - n_img)
    regime = "bf16_torch_adamw"           # bf16 weights, torch AdamW keeps its moments in each parameter's dtype
    est_bytes = est["memory"][regime]["total"]
    # what the model actually holds: weights in their dtypes, gradients and AdamW moments of the trainable ones
    held = {"weights": sum(p.numel() * p.element_size() for p in model.parameters()),
            "grads": sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad),
            "adam": sum(2 * p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)}
    summary = {"model": f"Qwen2.5-VL-{args.qwen.upper()} + DINOv2-{args.dinov2}", "recipe": "efficient_finetuning",
               "lora": asdict(cfg.lora), "image_hw": [448, 448], "image_tokens": n_img,
               "sequence_tokens": int(batch["input_ids"].shape[1]), "answer_tokens": 64, "loss": float(out.loss.detach()),
               "params": {k: {"total": v["total"], "trainable": v["trainable"]} for k, v in table.items()},
               "phases_s": {k: round(v, 2) for k, v in phases.items()},
               "rss_gib": {k: round(v / GiB, 2) for k, v in rss_at.items()},
               "peak_rss_build_gib": round(build_peak.peak / GiB, 2), "peak_rss_step_gib": round(step_peak.peak / GiB, 2),
               "ru_maxrss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB, 2),
               "held_gib": {k: round(v / GiB, 2) for k, v in held.items()},
               "estimate": {"regime": regime, "label": MEMORY_REGIMES[regime]["label"],
                            "weights_grads_adam_gib": round(est_bytes / GiB, 2),
                            "activations_gib": {k: round(v / GiB, 3) for k, v in est["activations"].items()},
                            "with_activations_gib": round((est_bytes + est["activations"]["total"]) / GiB, 2),
                            "trainable": est["params"]["total"]["trainable"], "total": est["params"]["total"]["total"],
                            "training_tflops": round(est["flops"]["total"] / 1e12, 2)},
               "step_peak_vs_estimate": round(step_peak.peak / est_bytes, 3),
               "step_peak_vs_estimate_with_activations": round(step_peak.peak / (est_bytes + est["activations"]["total"]), 3),
               # what the run itself allocated: the peak less the interpreter and libraries (RSS after the imports),
               # the same footing as a GPU's max_memory_allocated, which the estimate predicts
               "run_peak_vs_estimate_with_activations": round((step_peak.peak - rss_at["after_imports"]) / (est_bytes + est["activations"]["total"]), 3)}
    summary["achieved_gflops"] = round(est["flops"]["total"] / phases["step_s"] / 1e9, 1)
    write_result("real_size", {**metadata("real_size", state, args), "summary": summary})
    import json; print(json.dumps(summary, indent=1))


if __name__ == "__main__": main()

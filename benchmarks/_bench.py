"""Shared helpers of the benchmark scripts: run metadata, interleaved best-of-N timing, model pairs with identical
weights, batches from the shapes demo set, and a per-component breakdown of a training step from torch.profiler.

Not a benchmark itself (the leading underscore keeps it out of `bench_*.py`); every `bench_*.py` imports it.
"""
import json, os, platform, subprocess, time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
import transformers
from PIL import Image

RESULTS = Path(__file__).parent / "results"


# ---------------------------------------------------------------------------------------------------- metadata + IO
def git(*args):
    try: return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                               cwd=Path(__file__).parent).stdout.strip()
    except Exception: return None


def setup(threads=1):
    "One torch thread (the CPU is shared with other jobs) and the load average at the start."
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return {"t0": time.time(), "load_before": os.getloadavg()}


def metadata(name, state, args=None):
    "Machine, versions, load average, commit: what every results JSON carries."
    import dual_vision_nb
    return {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "wall_seconds": round(time.time() - state["t0"], 1), "args": vars(args) if args is not None else None,
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "cuda": torch.cuda.is_available(),
                        "load_average_before_after": [round(state["load_before"][0], 2), round(os.getloadavg()[0], 2)]},
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "transformers": transformers.__version__, "numpy": np.__version__,
                         "dual_vision_nb": getattr(dual_vision_nb, "__version__", None)},
            "commit": git("rev-parse", "HEAD"), "worktree_dirty": bool(git("status", "--porcelain"))}


def write_result(name, summary, out=None):
    out = Path(out) if out else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    return out


def md_table(rows, cols, headers=None):
    "A markdown table of `rows` (dicts) over `cols`."
    headers = headers or cols
    fmt = lambda v: f"{v:,.2f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- timing
def interleaved(fns:dict, repeats:int=5, warmup:int=1, min_seconds:float=0.0, max_repeats:int=200):
    """Run every callable once per round (after `warmup` rounds), interleaved, for at least `repeats` rounds and at least
    `min_seconds` (at most `max_repeats` rounds); seconds of every run by name. On a shared CPU the other jobs come in
    bursts: more rounds give each variant more chances at a quiet moment, and the fastest run is the one to compare."""
    for _ in range(warmup):
        for f in fns.values(): f()
    runs, t_start, order = {k: [] for k in fns}, time.perf_counter(), list(fns)
    while True:
        for k in order:                                   # A B C, then C B A, ...: no variant always goes first
            t0 = time.perf_counter(); fns[k](); runs[k].append(time.perf_counter() - t0)
        order.reverse()
        n = len(runs[order[0]])
        if n >= max_repeats or (n >= repeats and time.perf_counter() - t_start >= min_seconds): break
    return runs


def paired_ratio(runs, a, b):
    "Median over rounds of a_i / b_i: runs of the same round are adjacent in time, so slow drifts of the load cancel."
    return round(float(np.median(np.asarray(runs[a]) / np.asarray(runs[b]))), 4)


def best_ms(ts): return round(1000 * min(ts), 3)
def median_ms(ts): return round(1000 * float(np.median(ts)), 3)


# --------------------------------------------------------------------------------------------------- models + data
SIZES = {
    # the library's tiny defaults (tests, docs)
    "tiny": dict(qwen={}, dinov2={}, common_dim=32),
    # the embedded default: `demo_config`'s model, read from it (see `_demo_size`)
    "demo": None,
    # a "small" model: the LM outweighs the towers, as in real checkpoints (but 1000x smaller)
    "small": dict(qwen=dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                            num_key_value_heads=2, vision_hidden_size=128, vision_depth=4, vision_num_heads=2,
                            vision_intermediate_size=256, window_size=112),
                  dinov2=dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=2), common_dim=128),
}


def _demo_size()->dict:
    "The model `dvn_demo` trains, as a SIZES entry: read from `demo_config` itself, so the benchmarks time that model."
    from dual_vision_nb.demo import demo_config
    m = demo_config("unused", {"train": "", "val": ""})["model"]
    qwen = {k: v for k, v in m["tiny"].items() if k != "dinov2"}
    fusion = {k: m[k] for k in ("fusion_position_grid", "fusion_position_init_std") if k in m}
    return dict(qwen=qwen, dinov2=m["tiny"].get("dinov2", {}), common_dim=m["common_dim"], fusion=fusion)
SIZES["demo"] = _demo_size()


def model_pair(size="tiny", seed=0, vocab_size=512, second="dinov2"):
    "(fused, stock): a fused model (second encoder of family `second`) and a stock Qwen2.5-VL with exactly its Qwen weights."
    from transformers import Qwen2_5_VLForConditionalGeneration
    from dual_vision_nb.encoders import tiny_second_encoder_config, tiny_qwen2_5_vl_config
    from dual_vision_nb.fusion import DualVisionForConditionalGeneration
    s = SIZES[size]
    torch.manual_seed(seed)
    qcfg = tiny_qwen2_5_vl_config(vocab_size=vocab_size, **s["qwen"])
    fused = DualVisionForConditionalGeneration.from_encoders(qcfg, tiny_second_encoder_config(second, **s["dinov2"]),
                                                             common_dim=s["common_dim"], **s.get("fusion", {}))
    with torch.no_grad():   # a trained-looking fusion: the zero-initialised output layer made non-zero
        for p in fused.model.fusion.vision_to_lm.parameters(): p.normal_(0, 0.05)
    stock = Qwen2_5_VLForConditionalGeneration(qcfg)
    sd = {k: v for k, v in fused.state_dict().items() if not k.startswith(("model.dinov2.", "model.fusion."))}
    missing, unexpected = stock.load_state_dict(sd, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]: raise RuntimeError(f"{missing} {unexpected}")
    stock.tie_weights()
    return fused, stock


def n_params(m): return sum(p.numel() for p in m.parameters())


def shapes_samples(processor, n, seed=0, kind="vqa", tmp=None):
    "`n` training samples from the shapes demo set (images 112-224 px of varied aspect ratio)."
    import tempfile
    from dual_vision_nb.data import DualVisionDataset, load_records, make_shapes_dataset
    with tempfile.TemporaryDirectory() as d:
        paths = make_shapes_dataset(d, n_train=n, n_val=0, seed=seed)
        recs = load_records(paths["train" if kind == "vqa" else "train_captions"],
                            default_type="vqa" if kind == "vqa" else "captioning")[0][:n]
        ds = DualVisionDataset(recs, processor)
        return [ds[i] for i in range(len(ds))]


def synthetic_sample(processor, width, height, answer_words=4, seed=0):
    "One training sample: a random-shapes image of exactly width x height px, a question, an answer of ~N words."
    from dual_vision_nb.data import encode_messages
    rng = np.random.default_rng(seed)
    arr = np.full((height, width, 3), 255, np.uint8)
    for _ in range(3):
        x, y = rng.integers(0, width - 20), rng.integers(0, height - 20)
        arr[y:y + 20, x:x + 20] = rng.integers(0, 256, 3)
    words = "red green blue circle square triangle left right top bottom".split()
    answer = " ".join(rng.choice(words, answer_words))
    msgs = [{"role": "user", "content": [{"type": "image", "image": Image.fromarray(arr)},
                                         {"type": "text", "text": "Describe this image."}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return encode_messages(msgs, processor)


MODEL_KEYS = ("input_ids", "attention_mask", "position_ids", "pixel_values", "image_grid_thw", "mm_token_type_ids", "labels")


def model_inputs(batch): return {k: batch[k] for k in MODEL_KEYS if k in batch}


# --------------------------------------------------------------------------------------------- training steps
def fused_step(model, opt, batch):
    "One training step of the fused model: forward + backward + AdamW."
    def f():
        model(**batch, use_cache=False).loss.backward()
        opt.step(); opt.zero_grad(set_to_none=True)
    return f


def stock_plus_dinov2_step(stock, dinov2, opt, batch, one_backward=False):
    """Stock Qwen2.5-VL step plus a separate DINOv2 forward + backward on the same images: the no-fusion baseline.
    `one_backward`: both losses summed and back-propagated together, so both graphs are alive at once as in the fused
    model; otherwise Qwen's backward runs (and frees its graph) before DINOv2's forward."""
    from dual_vision_nb.encoders import second_merged_tokens
    def f():
        if one_backward:
            d = second_merged_tokens(dinov2, batch["pixel_values"], batch["image_grid_thw"])
            (stock(**batch, use_cache=False).loss + d.square().mean()).backward()
        else:
            stock(**batch, use_cache=False).loss.backward()
            second_merged_tokens(dinov2, batch["pixel_values"], batch["image_grid_thw"]).square().mean().backward()
        opt.step(); opt.zero_grad(set_to_none=True)
    return f


def peak_alloc_mb(step):
    "Peak memory one call of `step` allocates above what was live before it (torch.profiler allocation events)."
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof: step()
    return round(peak_bytes(prof) / 2**20, 2)


# ------------------------------------------------------------------------------------------ profiler breakdown
COMPONENTS = {"qwen_vision": ("model.visual",), "dinov2": ("model.dinov2", "dinov2"), "fusion": ("model.fusion",),
              "lm": ("model.language_model", "lm_head")}


def _scoped(model):
    "Forward hooks opening a record_function scope `dvn::<component>` around each component's forward."
    from torch.autograd.profiler import record_function
    handles = []
    for comp, names in COMPONENTS.items():
        for n in names:
            try: mod = model.get_submodule(n)
            except AttributeError: continue
            stack = []
            def pre(m, a, comp=comp, stack=stack):
                rf = record_function(f"dvn::{comp}"); rf.__enter__(); stack.append(rf)
            def post(m, a, o, stack=stack): stack.pop().__exit__(None, None, None)
            handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    return handles


def breakdown(model, step, memory=True, repeats=1):
    """`_breakdown` `repeats` times; each component keeps its fastest profiled time (contention hits one run, not all),
    and shares are taken of the fastest profiled step."""
    runs = [_breakdown(model, step, memory) for _ in range(repeats)]
    if repeats == 1: return runs[0]
    best = min(runs, key=lambda r: r["profiled_step_ms"])
    out = {**best, "components": {}, "profiled_runs": repeats}
    for c in best["components"]:
        row = {k: min(r["components"][c][k] for r in runs) for k in best["components"][c] if k != "share"}
        row["share"] = round(row["total_ms"] / best["profiled_step_ms"], 4)
        out["components"][c] = row
    return out


def _breakdown(model, step, memory=True):
    """Where one call of `step` spends its time, by component (qwen_vision, dinov2, fusion, lm, optimizer, other),
    forward and backward, from torch.profiler: forward time is each component's scope; a backward node is charged to
    the component whose forward op created it (autograd sequence numbers). Also the peak of the memory allocated
    during the step (above what was live before it). Profiling slows the step; read the shares, not the times."""
    from torch.profiler import ProfilerActivity, profile
    handles = _scoped(model)
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=memory) as prof:
            t0 = time.perf_counter(); step(); wall = time.perf_counter() - t0
    finally:
        for h in handles: h.remove()
    events = prof.events()
    def scope_of(e):
        while e is not None:
            if e.name.startswith("dvn::"): return e.name[5:]
            e = e.cpu_parent
        return None
    seq_scope, fwd = {}, {c: 0.0 for c in COMPONENTS}
    for e in events:
        if e.name.startswith("dvn::"):
            # exclusive: minus nested component scopes (none expected, but a shared module would nest)
            inner = sum(c.cpu_time_total for c in e.cpu_children if c.name.startswith("dvn::"))
            fwd[e.name[5:]] += e.cpu_time_total - inner
        elif e.sequence_nr >= 0 and not e.name.startswith("autograd::"):
            s = scope_of(e)
            if s is not None: seq_scope.setdefault(e.sequence_nr, s)
    bwd = {c: 0.0 for c in list(COMPONENTS) + ["other"]}
    opt_us, n_sync = 0.0, 0
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function:") and e.cpu_parent is None:
            bwd[seq_scope.get(e.sequence_nr, "other")] += e.cpu_time_total
        elif e.name.startswith("Optimizer.") and e.cpu_parent is None: opt_us += e.cpu_time_total
        if e.name in ("aten::_local_scalar_dense", "aten::item"): n_sync += e.name == "aten::_local_scalar_dense"
    total = wall * 1e6
    rows = {c: {"forward_ms": fwd[c] / 1e3, "backward_ms": bwd[c] / 1e3} for c in COMPONENTS}
    rows["optimizer"] = {"forward_ms": 0.0, "backward_ms": 0.0, "optimizer_ms": opt_us / 1e3}
    accounted = sum(fwd.values()) + sum(v for k, v in bwd.items() if k != "other") + opt_us
    rows["other"] = {"forward_ms": (total - accounted - bwd["other"]) / 1e3, "backward_ms": bwd["other"] / 1e3}
    for c, r in rows.items():
        r["total_ms"] = r["forward_ms"] + r["backward_ms"] + r.get("optimizer_ms", 0.0)
        r["share"] = r["total_ms"] / (total / 1e3)
        for k in list(r): r[k] = round(r[k], 4 if k == "share" else 3)
    out = {"profiled_step_ms": round(wall * 1e3, 2), "components": rows, "scalar_reads": n_sync}
    if memory: out["peak_alloc_mb"] = round(peak_bytes(prof) / 2**20, 2)
    return out


def peak_bytes(prof):
    "Peak of the running sum of the CPU allocations and frees the profiler saw (bytes above the start)."
    mem = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    run = peak = 0
    for _, b in mem:
        run += b; peak = max(peak, run)
    return peak


# ------------------------------------------------------------------------------------------ host-sync counting
class HostReads(torch.overrides.TorchFunctionMode):
    "Counts explicit tensor -> Python conversions (`.tolist()`, `.item()`, `int()`, `bool()`...): each is a host-device sync on a GPU."
    NAMES = ("tolist", "item", "__int__", "__bool__", "__index__", "__float__")
    def __init__(self):
        super().__init__(); self.counts = {}
    def __torch_function__(self, func, types, args=(), kwargs=None):
        n = getattr(func, "__name__", "")
        if n in self.NAMES: self.counts[n] = self.counts.get(n, 0) + 1
        return func(*args, **(kwargs or {}))
    @property
    def total(self): return sum(self.counts.values())

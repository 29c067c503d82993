"Training scenarios: the dvn_scenarios console script, the accelerate example configs, and DDP on two CPU processes."
import json, os, shutil, subprocess, sys, textwrap
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "accelerate"
SCENARIO_NAMES = ["vision_finetuning", "language_adaptation", "fusion_learning", "progressive_training",
                  "medical_adaptation", "efficient_finetuning"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_console_script_writes_configs_and_prints_guide(tmp_path):
    exe = shutil.which("dvn_scenarios")
    assert exe, "dvn_scenarios is not installed: pip install -e ."
    out = subprocess.run([exe, "--create_configs", str(tmp_path / "cfgs"), "--qwen", "tiny", "--dinov2", "tiny", "--guide"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 0, out.stderr
    from dual_vision_nb.config import DVNConfig
    assert sorted(p.name for p in (tmp_path / "cfgs").iterdir()) == sorted(f"config_{n}.json" for n in SCENARIO_NAMES)
    for n in SCENARIO_NAMES:
        cfg = DVNConfig.load(tmp_path / "cfgs" / f"config_{n}.json")
        assert (cfg.model.qwen, cfg.model.dinov2) == ("tiny", "tiny")
        assert f"## {n}" in out.stdout and f"dvn_train --config {tmp_path / 'cfgs'}/config_{n}.json" in out.stdout
    for label in ["tiny Qwen2.5-VL + tiny DINOv2", "Qwen2.5-VL-3B + DINOv2-base", "Qwen2.5-VL-3B + DINOv2-large",
                  "Qwen2.5-VL-7B + DINOv2-base", "Qwen2.5-VL-7B + DINOv2-large"]:
        rows = [l for l in out.stdout.splitlines() if l.startswith(f"| {label} (")]
        assert len(rows) == len(SCENARIO_NAMES), label
    assert "activations excluded" in out.stdout


def test_estimates_count_published_sizes():
    from dual_vision_nb.scenarios import estimate, meta_model, parameter_counts
    qwen_parts = ("qwen_vision", "qwen_merger", "llm")
    for qwen, n in {"3b": 3_754_622_976, "7b": 8_292_166_656}.items():
        assert sum(parameter_counts(meta_model(qwen, "base"))[c]["total"] for c in qwen_parts) == n
    e = estimate("fusion_learning", "7b", "large")
    p = e["params"]
    assert p["total"]["trainable"] == p["fusion"]["total"] + p["projections"]["total"]
    assert e["memory"]["mixed_bf16"]["total"] == 4 * p["total"]["total"] + 12 * p["total"]["trainable"]


def test_accelerate_examples_are_accepted_by_accelerate():
    from dual_vision_nb.scenarios import check_accelerate_config
    resolved = {p.name: check_accelerate_config(p) for p in EXAMPLES.glob("*.yaml")}
    assert sorted(resolved) == ["ddp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp.yaml", "fsdp2.yaml"]
    assert resolved["fsdp2.yaml"]["fsdp"]["version"] == 2
    assert resolved["fsdp.yaml"]["fsdp"]["sharding_strategy"] == "FULL_SHARD"
    assert resolved["fsdp.yaml"]["fsdp"]["use_orig_params"] is True
    assert resolved["deepspeed_zero3.yaml"]["deepspeed"]["zero_optimization"]["stage"] == 3


DDP_SCRIPT = textwrap.dedent('''
    import json, sys, torch
    from pathlib import Path
    from PIL import Image
    from torch.utils.data import DataLoader
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs
    from dual_vision_nb.losses import DualVisionLoss
    from dual_vision_nb.scenarios import scenario_config
    from dual_vision_nb.config import DVNConfig, stages_from_config
    from dual_vision_nb.trainer import Learner
    from dual_vision_nb.models import build_model, build_processor_for, component_params

    out = Path(sys.argv[1])
    cfg = DVNConfig.from_dict(scenario_config("fusion_learning", model={"qwen": "tiny", "dinov2": "tiny"}, data={},
                              output_dir=str(out), batch_size=2, max_steps=3, mixed_precision="no", scheduler="constant"))
    processor = build_processor_for(cfg); processor.tokenizer.padding_side = "right"
    torch.manual_seed(0)
    model = build_model(cfg, processor)

    def sample(colour):
        msgs = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (56, 56), colour)},
                                             {"type": "text", "text": "What color is it?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": colour}]}]
        enc = processor.apply_chat_template(msgs, tokenize=True, return_dict=True, return_tensors="pt")
        return {k: v if k in ("pixel_values", "image_grid_thw") else v[0] for k, v in enc.items()}

    def collate(samples):
        pad = lambda k, v: torch.nn.utils.rnn.pad_sequence([s[k] for s in samples], batch_first=True, padding_value=v)
        ids, mask = pad("input_ids", 0), pad("attention_mask", 0)
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100),
                "mm_token_type_ids": pad("mm_token_type_ids", 0), "pixel_values": torch.cat([s["pixel_values"] for s in samples]),
                "image_grid_thw": torch.cat([s["image_grid_thw"] for s in samples])}

    samples = [sample(c) for c in ("red", "green", "blue", "yellow") * 2]
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    # find_unused_parameters: DDP is built before the stage freezes components, and DINOv2's mask_token never gets
    # a gradient; the trainer's make_accelerator does not set it yet (without it DDP fails at the second step)
    acc = Accelerator(mixed_precision="no", dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=0),
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    learn = Learner(model, DataLoader(samples, batch_size=2, shuffle=True, collate_fn=collate), accelerator=acc,
                    loss_func=DualVisionLoss.from_config(cfg.loss), cfg=cfg.training, stages=stages_from_config(cfg),
                    freeze=cfg.freeze_config.settings()).fit()
    m = learn.unwrapped
    changed = sorted(c for c, ps in component_params(m).items() if any(not torch.equal(p.detach(), start[n]) for n, p in ps))
    (out / f"rank{acc.process_index}.json").write_text(json.dumps({
        "num_processes": acc.num_processes, "distributed_type": str(acc.distributed_type), "step": learn.step,
        "changed": changed, "checksum": float(sum(p.detach().double().sum() for p in m.parameters()))}))
''')


@pytest.mark.xdist_group("launch")      # 2 processes on accelerate's default port: one at a time under xdist
def test_ddp_example_trains_on_two_cpu_processes(tmp_path):
    "examples/accelerate/ddp.yaml, launched for real on CPU (gloo): both ranks step together and end identical."
    exe = shutil.which("accelerate")
    assert exe, "accelerate CLI not found"
    (tmp_path / "run.py").write_text(DDP_SCRIPT)
    out = tmp_path / "out"; out.mkdir()
    res = subprocess.run([exe, "launch", "--config_file", str(EXAMPLES / "ddp.yaml"), "--num_processes", "2",
                          "--mixed_precision", "no", "--main_process_port", "0", str(tmp_path / "run.py"), str(out)],
                         capture_output=True, text=True, env={**ENV, "ACCELERATE_USE_CPU": "true"}, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in range(2)]
    for r in ranks:
        assert (r["num_processes"], r["distributed_type"], r["step"]) == (2, "DistributedType.MULTI_CPU", 3)
        assert r["changed"] == ["fusion", "projections"]          # fusion_learning: everything else frozen
    assert ranks[0]["checksum"] == ranks[1]["checksum"]             # gradients were averaged: identical weights

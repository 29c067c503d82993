"LoRA through the command line: a kill -9 and an exact resume, 2 DDP processes equal to 1, and the exports a run leaves."
import csv, json, os, shutil, subprocess
from pathlib import Path
import pytest, torch
from dual_vision_nb.test_utils import run_dvn_train as _dvn_train, tiny_run_config as _config, write_config as _write

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["llm", "vision"]}


def _curve(run_dir):
    rows = csv.DictReader((Path(run_dir) / "metrics.csv").open())
    return {int(r["step"]): float(r["value"]) for r in rows if r["name"] == "train/loss"}


def _lora_config(tmp_path, out, quantization="none", **training):
    cfg = _config(tmp_path, out, **training)
    cfg["lora"] = {**LORA, "quantization": quantization}
    return cfg


@pytest.mark.parametrize("quantization", ["none", "4bit"])
def test_lora_kill_and_resume_is_exact_and_exports_merged(tmp_path, quantization):
    """A LoRA run (and a QLoRA run: the adapted layers' base weights in NF4, bitsandbytes' CPU backend) killed with
    SIGKILL at step 7 and resumed from its step-4 checkpoint has the uninterrupted run's curve (1e-6)."""
    full = _write(tmp_path, "full.json", _lora_config(tmp_path, tmp_path / "full", quantization, max_steps=12))
    r = _dvn_train("--config", str(full))
    assert "Language Model + LoRA" in r.stdout, r.stdout[-2000:]                      # the status table says it
    killed = _write(tmp_path, "killed.json", _lora_config(tmp_path, tmp_path / "killed", quantization, max_steps=12,
                                                          callbacks=["dual_vision_nb.test_utils:KillAtStep"]))
    r = _dvn_train("--config", str(killed), env={"DVN_KILL_AT_STEP": "7"}, check=False)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])
    assert json.loads((tmp_path / "killed" / "checkpoints" / "latest.json").read_text())["step"] == 4
    _dvn_train("--config", str(killed), "--resume", "latest", env={"DVN_KILL_AT_STEP": "-1"})
    a, b = _curve(tmp_path / "full"), _curve(tmp_path / "killed")
    assert sorted(a) == sorted(b) == list(range(1, 13))
    for s in a: assert abs(a[s] - b[s]) <= 1e-6, (s, a[s], b[s])
    # model/ is the merged model (plain from_pretrained, no adapter names), model/adapter/ the adapters in peft's format;
    # the last checkpoint (adapters unmerged, rebuilt from its run config) gives the same logits
    from dual_vision_nb.fusion import DualVisionForConditionalGeneration
    from dual_vision_nb.inference import load_for_inference
    model_dir = tmp_path / "full" / "model"
    merged = DualVisionForConditionalGeneration.from_pretrained(model_dir).eval()
    assert not any(".lora_" in n or ".base_layer." in n for n in merged.state_dict())
    assert (model_dir / "adapter" / "adapter_config.json").is_file()
    ckpt_dir = tmp_path / "full" / "checkpoints" / json.loads((tmp_path / "full" / "checkpoints" / "latest.json").read_text())["checkpoint"]
    from_ckpt = load_for_inference(ckpt_dir)
    assert any(".lora_" in n for n in from_ckpt.state_dict())
    n4 = sum(type(m).__name__ == "Linear4bit" for m in from_ckpt.modules())
    assert (n4 > 0) == (quantization == "4bit"), n4                                # rebuilt quantized, checked, not reloaded
    ids = torch.randint(0, 100, (1, 12))
    with torch.no_grad(): d = (merged(input_ids=ids).logits - from_ckpt.float()(input_ids=ids).logits).abs().max().item()
    assert d <= 1e-5, d


@pytest.mark.xdist_group("launch")      # 2 processes on accelerate's default port: one at a time under xdist
def test_lora_two_processes_match_one(tmp_path):
    "LoRA under 2 DDP processes x batch 2 trains with the losses of 1 process x batch 4 (1e-5: the gradient all-reduce sums in another order)."
    if shutil.which("accelerate") is None: pytest.fail("accelerate CLI not on PATH")
    kw = dict(max_steps=6, max_grad_norm=None)
    one = _write(tmp_path, "one.json", _lora_config(tmp_path, tmp_path / "one", batch_size=4, **kw))
    two = _write(tmp_path, "two.json", _lora_config(tmp_path, tmp_path / "two", batch_size=2, **kw))
    _dvn_train("--config", str(one))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    r = subprocess.run(["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", shutil.which("dvn_train"),
                        "--config", str(two)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _curve(tmp_path / "one"), _curve(tmp_path / "two")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for s in a: assert abs(a[s] - b[s]) <= 1e-5, (s, a[s], b[s])

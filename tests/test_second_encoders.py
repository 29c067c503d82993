"""The second encoder of the user's choice through the installed commands: `dvn_train` from a config file with a tiny SigLIP 2
and with a DINOv3 folder as downloaded, then `dvn_infer` on the exported model; the run resumes exactly."""
import json, os, shutil, subprocess
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from dual_vision_nb.encoders import load_second_encoder, tiny_second_encoder_config
from dual_vision_nb.test_utils import run_dvn_train, tiny_run_config, write_config


def _dvn_infer(*args):
    exe = shutil.which("dvn_infer")
    assert exe, "dvn_infer is not on PATH: pip install -e . registers the console scripts"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([exe, *map(str, args)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    return r


def _curve(run_dir):
    import csv
    return {int(r["step"]): float(r["value"]) for r in csv.DictReader((run_dir / "metrics.csv").open()) if r["name"] == "train/loss"}


@pytest.mark.parametrize("second", ["tiny-siglip2", "dinov3-folder"])
def test_dvn_train_with_another_second_encoder_exports_and_answers(tmp_path, second):
    cfg = tiny_run_config(tmp_path, tmp_path / "run", max_steps=6, save_every_steps=3)
    if second == "tiny-siglip2":
        cfg["model"]["tiny"]["dinov2"] = {"family": "siglip2", "hidden_size": 32}
        family, source = "siglip2", None
    else:                                         # a folder as a user has downloaded it, DINOv3 with registers
        torch.manual_seed(0)
        load_second_encoder(tiny_second_encoder_config("dinov3", num_register_tokens=4)).save_pretrained(tmp_path / "dinov3")
        cfg["model"]["dinov2"] = str(tmp_path / "dinov3")
        family, source = "dinov3", str(tmp_path / "dinov3")
    run_dvn_train("--config", str(write_config(tmp_path, "cfg.json", cfg)))
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert (saved["dinov2_config"]["model_type"], saved["dinov2_source"]) == (
        {"siglip2": "siglip2_vision_model", "dinov3": "dinov3_vit"}[family], source)
    assert saved["dinov2_image_mean"] == ([0.5, 0.5, 0.5] if family == "siglip2" else [0.485, 0.456, 0.406])
    if source:   # training started from the folder's weights: 6 AdamW steps at lr <= 3e-3 move a weight by < 0.02,
                 # a fresh random init would differ by ~0.1 somewhere
        start = load_file(tmp_path / "dinov3" / "model.safetensors")
        trained = {k.removeprefix("model.dinov2."): v for k, v in load_file(tmp_path / "run" / "model" / "model.safetensors").items()
                   if k.startswith("model.dinov2.")}
        assert set(trained) == set(start)
        assert max((trained[k] - start[k]).abs().max().item() for k in start) < 0.03
    image = next((tmp_path / "data" / "images").glob("val_*.png"))
    out = tmp_path / "answer.json"
    _dvn_infer("--checkpoint", tmp_path / "run", "--image", image, "--question", "How many shapes are there?",
               "--compare_encoders", "--json_out", out)
    res = json.loads(out.read_text())["compare_encoders"]
    assert set(res) == {"fused", "qwen", "dinov2"} and res["dinov2"]["fusion_weights"] == [[0.0, 1.0]]

    # resumed from step 3, the curve is the uninterrupted one
    resumed = dict(cfg, training={**cfg["training"], "output_dir": str(tmp_path / "resumed")})
    run_dvn_train("--config", str(write_config(tmp_path, "resumed.json", resumed)),
                  "--resume", str(tmp_path / "run" / "checkpoints" / "step-0000003"))
    full, again = _curve(tmp_path / "run"), _curve(tmp_path / "resumed")
    assert sorted(again) == [4, 5, 6]
    for s in again: assert abs(again[s] - full[s]) < 1e-6, (s, again[s], full[s])

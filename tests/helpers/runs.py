"Shared pieces of the CLI-level tests: a tiny run config on the demo set, writing it, and running dvn_train."
import json, os, shutil, subprocess
from dual_vision_nb.data import make_shapes_dataset


def tiny_model_config():
    "The `model` section every CLI-level test trains: a tiny fused model, at most 16 image tokens."
    return {"tiny": {"hidden_size": 32, "intermediate_size": 64, "vision_hidden_size": 32},
            "common_dim": 16, "max_pixels": 16 * 28 * 28}


def tiny_run_config(tmp, out, **training):
    "A tiny fused model on a 48-image demo set, LM loss only, checkpoints every 4 steps (all kept)."
    data = make_shapes_dataset(tmp / "data", n_train=48, n_val=8, seed=0)
    return {"model": tiny_model_config(),
            "training": {"output_dir": str(out), "batch_size": 4, "learning_rate": 3e-3, "num_epochs": 2,
                         "save_every_steps": 4, "keep_last": 0, "warmup_steps": 2, **training},
            "loss": {"lm_weight": 1.0, "diversity_weight": 0.0},
            "data": {"train_data_path": str(data["train"]), "val_data_path": str(data["val"]), "max_length": 256},
            "logging": {"tensorboard": False, "progress_bar": False}}


def write_config(tmp, name, cfg):
    p = tmp / name; p.write_text(json.dumps(cfg)); return p


def run_dvn_train(*args, env=None, check=True):
    "The installed dvn_train console script in a subprocess, offline, one thread."
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    exe = shutil.which("dvn_train")
    assert exe, "dvn_train is not on PATH: pip install -e . registers the console scripts"
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, check=check, timeout=600)

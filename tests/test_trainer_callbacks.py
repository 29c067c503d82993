"Trainer behaviours not covered in the notebook: early stopping, switching the training mode mid-run, plateau LR cuts, bf16 autocast."
import json, torch
from dual_vision_nb.data import make_shapes_dataset
from dual_vision_nb.trainer import Callback
from dual_vision_nb.config import DVNConfig, freeze_settings
from dual_vision_nb.callbacks import EarlyStoppingCB, PlateauCB
from dual_vision_nb.recipe import build_run
from dual_vision_nb.models import component_params


def _cfg(tmp, **training):
    data = make_shapes_dataset(tmp / "data", n_train=24, n_val=8, seed=0)
    return DVNConfig.from_dict({
        "model": {"tiny": {"hidden_size": 32, "intermediate_size": 64}, "common_dim": 16, "max_pixels": 16 * 28 * 28},
        "training": {"output_dir": str(tmp / "run"), "batch_size": 4, "learning_rate": 1e-3, **training},
        "loss": {"diversity_weight": 0.0},
        "data": {"train_data_path": str(data["train"]), "val_data_path": str(data["val"]), "max_length": 256},
        "logging": {"tensorboard": False, "progress_bar": False}})


class FakeValidation(Callback):
    "Replace the validation loss by a scripted sequence (the trainer's reaction is what is under test)."
    order = 25
    def __init__(self, values): self.values = list(values)
    def after_validate(self): self.learn.metrics["valid_loss"] = self.values.pop(0)


def test_early_stopping_stops_after_patience(tmp_path):
    learn = build_run(_cfg(tmp_path, num_epochs=10))
    learn.cbs = sorted(learn.cbs + [FakeValidation([1.0, 0.9, 0.95, 0.93, 0.91, 0.5, 0.4]), EarlyStoppingCB(patience=3)],
                       key=lambda c: c.order)
    for cb in learn.cbs: cb.learn = learn
    learn.fit()
    assert learn.epoch == 5 - 1 + 1 and learn.step == 5 * 6            # stopped at the 5th validation (3 without gain)
    events = [json.loads(l) for l in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "early_stop" and events[-1]["best"] == 0.9


def test_plateau_cuts_the_learning_rate(tmp_path):
    learn = build_run(_cfg(tmp_path, num_epochs=4, scheduler="plateau", plateau_patience=1, plateau_factor=0.5))
    learn.cbs = sorted(learn.cbs + [FakeValidation([1.0, 1.1, 1.2, 0.5])], key=lambda c: c.order)
    for cb in learn.cbs: cb.learn = learn
    assert any(isinstance(c, PlateauCB) for c in learn.cbs)
    learn.fit()
    assert learn.scheduler.lr_lambdas[0].scale == 0.25                  # two stalled validations, two cuts
    assert all(abs(g["lr"] - 1e-3 * 0.25) < 1e-12 for g in learn.opt.param_groups)


def test_switch_training_mode_mid_run(tmp_path):
    learn = build_run(_cfg(tmp_path, num_epochs=3))
    seen = {}
    class Switch(Callback):
        def after_epoch(self):
            if self.learn.epoch == 1:
                self.learn.switch_training_mode("fusion_only")
                seen["trainable"] = {c for c, ps in component_params(self.learn.unwrapped).items()
                                     if any(p.requires_grad for _, p in ps)}
                seen["groups"] = {g["group"] for g in self.learn.opt.param_groups}
            if self.learn.epoch == 2:
                self.learn.change_freeze_settings({"freeze_llm": False})
                seen["groups_after"] = {g["group"] for g in self.learn.opt.param_groups}
    learn.cbs.append(Switch()); learn.cbs[-1].learn = learn
    learn.fit()
    assert seen["trainable"] == {"fusion", "projections"} and seen["groups"] == {"fusion", "projections"}
    assert seen["groups_after"] == {"fusion", "projections", "llm"}
    assert learn.freeze == freeze_settings("fusion_only", freeze_llm=False)


def test_bf16_autocast_trains(tmp_path):
    "bf16 mixed precision through accelerate (its own process: accelerate's state is one per process)."
    import os, shutil, subprocess
    cfg = _cfg(tmp_path, num_epochs=1, mixed_precision="bf16", cpu=True, max_steps=3).to_dict()
    (tmp_path / "bf16.json").write_text(json.dumps(cfg))
    r = subprocess.run([shutil.which("dvn_train"), "--config", str(tmp_path / "bf16.json")], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    losses = [float(r.split(",")[-1]) for r in rows if ",train/loss," in r]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))

"The double-loop controller end to end through the CLI (a real kill -9 and an exact resume), and task heads under the Learner."
import csv, json, os, shutil, subprocess
from pathlib import Path
import pytest, torch
from dual_vision_nb.data import make_shapes_dataset
from dual_vision_nb.test_utils import run_dvn_train, tiny_run_config as _config, write_config as _write

HERE = Path(__file__).parent
CONTROLLER = {"cls": "dual_vision_nb.double_loop:DoubleLoopCB", "args": {"every": 3}}   # a decision every 3 steps


def _curves(run_dir, prefix=("train/loss", "lr/", "double_loop/")):
    "name -> {step: value} for the losses, learning rates and controller scales in metrics.csv."
    out = {}
    for r in csv.DictReader((Path(run_dir) / "metrics.csv").open()):
        if r["name"].startswith(prefix): out.setdefault(r["name"], {})[int(r["step"])] = float(r["value"])
    return out


def _dvn_train(*args, env=None, check=True):
    return run_dvn_train(*args, env=env, check=check)


def _controller_state(run_dir, step):
    st = json.loads((Path(run_dir) / "checkpoints" / f"step-{step:07d}" / "trainer_state.json").read_text())
    return next(v for k, v in st["callbacks"].items() if k.startswith("double_loop"))


def test_kill_and_resume_with_controller_is_exact(tmp_path):
    "Controller on (a decision every 3 steps), killed with SIGKILL at step 10, resumed from step 8: curves equal to 1e-6."
    full = _write(tmp_path, "full.json", _config(tmp_path, tmp_path / "full", max_steps=16, callbacks=[CONTROLLER]))
    _dvn_train("--config", str(full))
    killed = _write(tmp_path, "killed.json", _config(tmp_path, tmp_path / "killed", max_steps=16,
                                                     callbacks=[CONTROLLER, "dual_vision_nb.test_utils:KillAtStep"]))
    env = {"DVN_KILL_AT_STEP": "10"}
    r = _dvn_train("--config", str(killed), env=env, check=False)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])                 # really killed, mid-run
    assert json.loads((tmp_path / "killed" / "checkpoints" / "latest.json").read_text())["step"] == 8
    _dvn_train("--config", str(killed), "--resume", "latest", env={**env, "DVN_KILL_AT_STEP": "-1"})
    a, b = _curves(tmp_path / "full"), _curves(tmp_path / "killed")
    assert sorted(a["train/loss"]) == sorted(b["train/loss"]) == list(range(1, 17))
    assert set(a) == set(b) and any(k.startswith("double_loop/scale/") for k in a)
    for name in a:
        for s in a[name]: assert abs(a[name][s] - b[name][s]) <= 1e-6, (name, s, a[name][s], b[name][s])
    # the controller really acted (5 decisions, scales moved off 1) and its whole state is the same at the end
    sa, sb = _controller_state(tmp_path / "full", 16), _controller_state(tmp_path / "killed", 16)
    assert [e["step"] for e in sa["history"]] == [3, 6, 9, 12, 15]
    assert any(abs(s - 1) > 1e-3 for s in sa["scales"].values())
    assert sa == sb
    # the scales reached the optimizer: llm's logged lr is the fixed run's lr times its scale
    fixed = _write(tmp_path, "fixed.json", _config(tmp_path, tmp_path / "fixed", max_steps=16))   # same LR horizon
    _dvn_train("--config", str(fixed))
    f = _curves(tmp_path / "fixed")
    for s in range(1, 7):
        assert abs(a["lr/llm"][s] - f["lr/llm"][s] * a["double_loop/scale/llm"][s]) <= 1e-12 * max(1.0, f["lr/llm"][s])
        assert 0.1 <= a["double_loop/scale/llm"][s] <= 10.0


def test_disabled_controller_changes_nothing(tmp_path, monkeypatch):
    "enabled: false: the run is the fixed schedule's, bit for bit."
    from dual_vision_nb.recipe import train
    from dual_vision_nb.double_loop import DoubleLoopCB
    off_cb = {"cls": CONTROLLER["cls"], "args": {"enabled": False}}
    off = train(_config(tmp_path, tmp_path / "off", max_steps=6, callbacks=[off_cb]))
    assert not next(c for c in off.cbs if isinstance(c, DoubleLoopCB)).enabled
    train(_config(tmp_path, tmp_path / "none", max_steps=6))
    assert _curves(tmp_path / "off")["train/loss"] == _curves(tmp_path / "none")["train/loss"]


def test_learner_trains_heads(tmp_path):
    "A DualVisionWithHeads trained by the Learner: heads in their own group, targets reach them, the controller scales them."
    from torch.utils.data import DataLoader
    from dual_vision_nb.encoders import build_processor, tiny_dinov2_config, tiny_qwen2_5_vl_config
    from dual_vision_nb.fusion import DualVisionForConditionalGeneration
    from dual_vision_nb.callbacks import CheckpointCB, GradNormCB, LoggerCB
    from dual_vision_nb.trainer import Learner
    from dual_vision_nb.config import TrainingConfig
    from dual_vision_nb.double_loop import DoubleLoopCB
    from dual_vision_nb.task_heads import ClassificationHead, DualVisionWithHeads, HEADS_PATTERN, HeadsLoss, SequenceGenerationHead, TaskCollator, TaskDataset, count_records
    data = make_shapes_dataset(tmp_path / "data", n_train=24, n_val=8, seed=0)
    processor = build_processor()
    torch.manual_seed(0)
    vlm = DualVisionForConditionalGeneration.from_encoders(tiny_qwen2_5_vl_config(vocab_size=512), tiny_dinov2_config(), common_dim=16)
    model = DualVisionWithHeads(vlm, {"count": ClassificationHead(64, 3), "answer": SequenceGenerationHead()})
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("heads.")}
    coll = TaskCollator(processor)
    train_dl = DataLoader(TaskDataset(count_records(data["train"]), processor), batch_size=4, shuffle=True, collate_fn=coll)
    valid_dl = DataLoader(TaskDataset(count_records(data["val"]), processor), batch_size=4, collate_fn=coll)
    out = tmp_path / "run"
    cfg = TrainingConfig(output_dir=str(out), max_steps=4, learning_rate=3e-3, extra_param_groups={"heads": HEADS_PATTERN})
    ctl = DoubleLoopCB(every=2)
    learn = Learner(model, train_dl, valid_dl, HeadsLoss(model.heads), cfg, processor=processor,
                    cbs=[GradNormCB(), ctl, LoggerCB(out), CheckpointCB(out, every_steps=2)]).fit()
    assert all(not torch.equal(p, before[n]) for n, p in learn.unwrapped.named_parameters() if n in before)
    names = {r["name"] for r in csv.DictReader((out / "metrics.csv").open())}
    assert {"train/acc/count", "train/count", "train/lm", "lr/heads", "double_loop/scale/heads"} <= names
    assert "heads" in ctl.scales and learn.validate()["valid_loss"] > 0
    assert (out / "model" / "heads.json").exists()
    assert DualVisionWithHeads.from_pretrained(out / "model").heads.spec == model.heads.spec


def test_task_heads_from_a_config_file(tmp_path):
    "extensions.task_heads: dvn_train trains a classification head beside the LM on records with task_targets, and exports both."
    from dual_vision_nb.task_heads import DualVisionWithHeads, count_records
    from dual_vision_nb.test_utils import tiny_model_config, write_config
    data = make_shapes_dataset(tmp_path / "data", n_train=24, n_val=4, seed=0)
    recs = [{k: v for k, v in r.items() if k != "_image_root"} for r in count_records(data["train"])]
    (tmp_path / "data" / "count.json").write_text(json.dumps(recs))
    cfg = {"model": tiny_model_config(),
           "extensions": {"task_heads": {"heads": {"count": {"type": "ClassificationHead", "n_classes": 3, "hidden_dim": 16},
                                                   "answer": {"type": "SequenceGenerationHead"}}}},
           "training": {"output_dir": str(tmp_path / "run"), "batch_size": 4, "max_steps": 4, "learning_rate": 3e-3,
                        "save_every_steps": 2},
           "data": {"train_data_path": str(tmp_path / "data" / "count.json"), "max_length": 256},
           "logging": {"tensorboard": False, "progress_bar": False}}
    _dvn_train("--config", str(write_config(tmp_path, "heads.json", cfg)))
    names = {r["name"] for r in csv.DictReader((tmp_path / "run" / "metrics.csv").open())}
    assert {"train/count", "train/answer", "train/acc/count"} <= names, sorted(names)      # both tasks trained and logged
    assert {"grad_norm/heads", "grad_norm/llm"} <= names
    back = DualVisionWithHeads.from_pretrained(tmp_path / "run" / "model")
    assert set(back.heads.tasks) == {"count", "answer"} and back.heads.tasks["count"].net[-1].out_features == 3

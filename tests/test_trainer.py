"The trainer end to end through its CLI: a real kill -9 and an exact resume, 2-process DDP equal to 1 process, atomic checkpoints."
import csv, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest, torch
from dual_vision_nb.test_utils import run_dvn_train as _dvn_train, tiny_run_config as _config, write_config as _write

HERE = Path(__file__).parent


def _curve(run_dir):
    rows = csv.DictReader((Path(run_dir) / "metrics.csv").open())
    return {int(r["step"]): float(r["value"]) for r in rows if r["name"] == "train/loss"}


@pytest.mark.parametrize("group_by_length", [False, True])
def test_kill_and_resume_is_exact(tmp_path, group_by_length):
    "Killed with SIGKILL at step 10 and resumed from step 8, with the sample cache on: curve equal to an uncached, uninterrupted run."
    full = _write(tmp_path, "full.json", _config(tmp_path, tmp_path / "full", max_steps=16, group_by_length=group_by_length))
    _dvn_train("--config", str(full))
    killed_cfg = _config(tmp_path, tmp_path / "killed", max_steps=16, callbacks=["dual_vision_nb.test_utils:KillAtStep"],
                         group_by_length=group_by_length)
    killed_cfg["data"]["cache_samples"] = True     # and the sample cache (empty again after the kill) changes nothing
    killed = _write(tmp_path, "killed.json", killed_cfg)
    env = {"DVN_KILL_AT_STEP": "10"}
    r = _dvn_train("--config", str(killed), env=env, check=False)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])                 # really killed, mid-run
    latest = json.loads((tmp_path / "killed" / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 8                                                    # last checkpoint before the kill
    ckpt = tmp_path / "killed" / "checkpoints" / latest["checkpoint"]
    saved = json.loads((ckpt / "run_config.json").read_text())                    # the run's config travels with it
    assert saved["training"]["group_by_length"] is group_by_length and (ckpt / "model_config.json").exists()
    assert max(_curve(tmp_path / "killed")) == 10                                 # it had logged past it
    _dvn_train("--config", str(killed), "--resume", "latest", env={"DVN_KILL_AT_STEP": "-1"})
    a, b = _curve(tmp_path / "full"), _curve(tmp_path / "killed")
    assert sorted(a) == sorted(b) == list(range(1, 17))
    for s in a: assert abs(a[s] - b[s]) <= 1e-6, (s, a[s], b[s])


@pytest.mark.xdist_group("launch")      # 2 processes on accelerate's default port: one at a time under xdist
@pytest.mark.parametrize("group_by_length", [False, True])
def test_two_processes_match_one(tmp_path, group_by_length):
    "2 DDP processes x batch 2 train with the losses of 1 process x batch 4, with random or length-grouped batches."
    if shutil.which("accelerate") is None: pytest.fail("accelerate CLI not on PATH")
    kw = dict(max_steps=6, max_grad_norm=None, group_by_length=group_by_length)
    one = _write(tmp_path, "one.json", _config(tmp_path, tmp_path / "one", batch_size=4, **kw))
    two = _write(tmp_path, "two.json", _config(tmp_path, tmp_path / "two", batch_size=2, **kw))
    _dvn_train("--config", str(one))
    # `accelerate launch --cpu` starts ONE process; several CPU processes (gloo) are MULTI_GPU with ACCELERATE_USE_CPU
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    r = subprocess.run(["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", shutil.which("dvn_train"),
                        "--config", str(two)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("PARAMETER FREEZE STATUS") == 1 and r.stderr.count("finished at step 6 (max_steps)") == 1   # only the main process reports
    a, b = _curve(tmp_path / "one"), _curve(tmp_path / "two")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for s in a: assert abs(a[s] - b[s]) <= 1e-5, (s, a[s], b[s])


def test_crash_while_saving_keeps_latest(tmp_path, monkeypatch):
    from dual_vision_nb import callbacks
    from dual_vision_nb.config import DVNConfig, resolve_resume
    from dual_vision_nb.recipe import build_run, train
    cfg = DVNConfig.from_dict(_config(tmp_path, tmp_path / "run", max_steps=4))
    train(cfg)                                                   # writes step-4, latest -> step-4
    learn = build_run(cfg)
    callbacks.load_checkpoint(learn, resolve_resume("latest", tmp_path / "run"))
    learn.begin_stage()
    learn.step = 5
    def boom(*a, **k): raise OSError("disk full")
    monkeypatch.setattr(callbacks, "save_model", boom)
    with pytest.raises(OSError): callbacks.save_checkpoint(learn, tmp_path / "run" / "checkpoints" / "step-0000005")
    latest = resolve_resume("latest", tmp_path / "run")
    assert latest.name == "step-0000004" and (latest / "model.safetensors").exists()
    assert not (tmp_path / "run" / "checkpoints" / "step-0000005").exists()
    learn2 = build_run(cfg); callbacks.load_checkpoint(learn2, latest)   # the old one still loads
    assert learn2.step == 4

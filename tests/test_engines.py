"""Sharded engines through `accelerate launch` with 2 CPU processes (gloo): DeepSpeed ZeRO-2 trains with one process's
losses across stages that change what trains (LoRA included), a kill -9 resumes exactly, and a launch that would
silently fall back to another engine is refused."""
import csv, json, os, shutil, subprocess
from pathlib import Path
import pytest
from dual_vision_nb.test_utils import run_dvn_train as _dvn_train, tiny_run_config as _config, write_config as _write

EXAMPLES = Path(__file__).parent.parent / "examples" / "accelerate"
STAGES = [{"name": "fusion", "steps": 3, "training_mode": "fusion_only"},
          {"name": "lm", "steps": 3, "training_mode": "full", "freeze_qwen_vision": True},
          {"name": "all", "steps": 3, "training_mode": "full"}]


def _needs_deepspeed():
    try: import deepspeed  # noqa: F401
    except ImportError: pytest.fail("deepspeed is not installed: it is a dev requirement (pip install -e '.[dev]')")


def _curve(run_dir):
    return {int(r["step"]): float(r["value"]) for r in csv.DictReader((Path(run_dir) / "metrics.csv").open()) if r["name"] == "train/loss"}


def _assert_same_curve(run_a, run_b, n_steps, tol):
    "Both runs logged steps 1..n_steps with losses equal within `tol`."
    a, b = _curve(run_a), _curve(run_b)
    assert sorted(a) == sorted(b) == list(range(1, n_steps + 1)), (sorted(a), sorted(b))
    for s in a: assert abs(a[s] - b[s]) <= tol, (s, a[s], b[s])


def _launch(yaml, cfg_path, env=None, check=True):
    "dvn_train under `accelerate launch` with 2 processes on the CPU (python -m: no console-script shim in between)."
    if shutil.which("accelerate") is None: pytest.fail("accelerate CLI not on PATH")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    r = subprocess.run(["accelerate", "launch", "--config_file", str(EXAMPLES / yaml), "--num_processes", "2",
                        "--mixed_precision", "no", "-m", "dual_vision_nb.launch", "--config", str(cfg_path)],
                       env=env, capture_output=True, text=True, timeout=600)
    if check: assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_zero2_matches_one_process_across_stages_with_lora(tmp_path):
    """ZeRO-2 over 2 processes x batch 2 = 1 process x batch 4, through three stages that change what trains (a new engine
    each stage), LoRA adapters, clipping at 1.0: losses equal to 1e-5 (the reduce sums in another order; float32)."""
    _needs_deepspeed()
    def cfg(name, bs):
        c = _config(tmp_path, tmp_path / name, max_steps=9, batch_size=bs, num_epochs=3)
        c["lora"] = {"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["llm", "vision"]}
        c["curriculum_training"] = {"enabled": True, "stages": STAGES}
        return _write(tmp_path, f"{name}.json", c)
    _dvn_train("--config", str(cfg("one", 4)))
    r = _launch("deepspeed_zero2.yaml", cfg("zero2", 2))
    assert r.stderr.count("finished at step 9 (max_steps)") == 1
    ckpt = tmp_path / "zero2" / "checkpoints" / "step-0000008" / "deepspeed" / "state"
    assert sorted(p.name for p in ckpt.glob("zero_pp_rank_*_optim_states.pt")) == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]   # really sharded
    _assert_same_curve(tmp_path / "one", tmp_path / "zero2", 9, 1e-5)


def test_zero2_kill_and_resume_is_exact(tmp_path):
    "Both ZeRO-2 processes SIGKILLed at step 7; resumed from step 4 (weights, each rank's partitions, RNG): the uninterrupted curve (1e-6)."
    _needs_deepspeed()
    full = _write(tmp_path, "full.json", _config(tmp_path, tmp_path / "full", max_steps=12, batch_size=2))
    _launch("deepspeed_zero2.yaml", full)
    killed = _write(tmp_path, "killed.json", _config(tmp_path, tmp_path / "killed", max_steps=12, batch_size=2,
                                                     callbacks=["dual_vision_nb.test_utils:KillAtStep"]))
    r = _launch("deepspeed_zero2.yaml", killed, env={"DVN_KILL_AT_STEP": "7"}, check=False)
    assert r.returncode != 0
    assert json.loads((tmp_path / "killed" / "checkpoints" / "latest.json").read_text())["step"] == 4
    cfg = json.loads(killed.read_text()); cfg["training"]["resume"] = "latest"
    _launch("deepspeed_zero2.yaml", _write(tmp_path, "resume.json", cfg), env={"DVN_KILL_AT_STEP": "-1"})
    _assert_same_curve(tmp_path / "full", tmp_path / "killed", 12, 1e-6)


def test_a_launch_that_would_fall_back_to_ddp_is_refused(tmp_path):
    "ACCELERATE_USE_CPU=true turns accelerate's DeepSpeed off (the run would be plain DDP); the trainer says so and stops."
    _needs_deepspeed()
    cfg = _write(tmp_path, "c.json", _config(tmp_path, tmp_path / "c", max_steps=2, batch_size=2))
    r = _launch("deepspeed_zero2.yaml", cfg, env={"ACCELERATE_USE_CPU": "true"}, check=False)
    assert r.returncode != 0 and "asked for DEEPSPEED, but the run got MULTI_CPU" in r.stderr and "unset it" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "c" / "metrics.csv").exists()


def test_fsdp_without_a_gpu_is_refused_not_run_alone(tmp_path):
    "accelerate runs FSDP on GPUs only: on the CPU each process would train alone; the trainer says so before training."
    cfg = _write(tmp_path, "c.json", _config(tmp_path, tmp_path / "c", max_steps=2, batch_size=2))
    r = _launch("fsdp2.yaml", cfg, check=False)
    assert r.returncode != 0 and "FSDP, which accelerate runs on GPUs only" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "c" / "metrics.csv").exists()


def test_zero2_one_process_bad_loss_skips_the_step_on_every_process(tmp_path):
    """Under ZeRO-2 the gradients live in DeepSpeed's partitions, so the NaN guard decides on every process's loss: a
    non-finite loss on process 1 alone makes both skip that step (no hang, no half-applied step), and the run goes on."""
    _needs_deepspeed()
    cfg = _config(tmp_path, tmp_path / "nan", max_steps=6, batch_size=2, callbacks=["dual_vision_nb.test_utils:NaNLossAtStep"])
    _launch("deepspeed_zero2.yaml", _write(tmp_path, "nan.json", cfg), env={"DVN_NAN_AT_STEP": "3", "DVN_NAN_RANK": "1"})
    events = [json.loads(l) for l in (tmp_path / "nan" / "events.jsonl").read_text().splitlines()]
    skips = [e for e in events if e.get("event") == "skip_nonfinite"]
    assert [e["step"] for e in skips] == [2], skips
    assert sorted(_curve(tmp_path / "nan")) == list(range(1, 7))


def test_zero3_is_refused_with_a_clear_error(tmp_path):
    _needs_deepspeed()
    cfg = _write(tmp_path, "c.json", _config(tmp_path, tmp_path / "c", max_steps=2, batch_size=2))
    r = _launch("deepspeed_zero3.yaml", cfg, check=False)
    assert r.returncode != 0 and "ZeRO-3 is not supported by the trainer" in r.stderr, r.stderr[-2000:]

"""Sharded engines through `accelerate launch` with 2 CPU processes (gloo): DeepSpeed ZeRO-2, ZeRO-3 and FSDP2 train
with one process's losses across stages that change what trains (LoRA included), write per-process shards, resume
exactly after kill -9, agree on skipped steps; a launch that would silently fall back to another engine is refused."""
import csv, json, os, shutil, subprocess
from pathlib import Path
import pytest
from dual_vision_nb.test_utils import run_dvn_train as _dvn_train, tiny_run_config as _config, write_config as _write

EXAMPLES = Path(__file__).parent.parent / "examples" / "accelerate"
# every test here starts 2 processes on accelerate's default port: under pytest-xdist they share one worker (one at a time)
pytestmark = pytest.mark.xdist_group("launch")
STAGES = [{"name": "fusion", "steps": 3, "training_mode": "fusion_only"},
          {"name": "lm", "steps": 3, "training_mode": "full", "freeze_qwen_vision": True},
          {"name": "all", "steps": 3, "training_mode": "full"}]


def _needs_deepspeed():
    try: import deepspeed  # noqa: F401
    except ImportError: pytest.fail("deepspeed is not installed: it is a dev requirement (pip install -e '.[dev]')")


def _curve(run_dir):
    return {int(r["step"]): float(r["value"]) for r in csv.DictReader((Path(run_dir) / "metrics.csv").open()) if r["name"] == "train/loss"}


def _norms(run_dir):
    return {(int(r["step"]), r["name"]): float(r["value"]) for r in csv.DictReader((Path(run_dir) / "metrics.csv").open())
            if r["name"].startswith(("grad_norm/", "weight_norm/"))}


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


ENGINES = {"zero2": "deepspeed_zero2.yaml", "zero3": "deepspeed_zero3.yaml", "fsdp2": "fsdp2.yaml"}
SHARDS = {"zero2": ("deepspeed/state", ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]),
          "zero3": ("deepspeed/state", ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]),
          "fsdp2": ("fsdp", ["__0_0.distcp", "__1_0.distcp"])}


@pytest.fixture(scope="module")
def one_process_stages(tmp_path_factory):
    "The reference: one process, batch 4, through the three stages with LoRA (shared by the engines' tests)."
    tmp = tmp_path_factory.mktemp("one")
    _dvn_train("--config", str(_stage_config(tmp, "one", 4)))
    return tmp / "one"


def _stage_config(tmp, name, bs):
    c = _config(tmp, tmp / name, max_steps=9, batch_size=bs, num_epochs=3)
    c["lora"] = {"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["llm", "vision"]}
    c["curriculum_training"] = {"enabled": True, "stages": STAGES}
    return _write(tmp, f"{name}.json", c)


def _model_params(folder):
    from dual_vision_nb.fusion import DualVisionForConditionalGeneration
    return dict(DualVisionForConditionalGeneration.from_pretrained(folder).named_parameters())


@pytest.mark.parametrize("engine", list(ENGINES))
def test_sharded_engine_matches_one_process_across_stages_with_lora(tmp_path, one_process_stages, engine):
    """2 processes x batch 2 = 1 process x batch 4 through three stages that change what trains (a new ZeRO engine each
    stage; FSDP2 keeps its shards and builds a new optimizer), LoRA adapters, clipping at 1.0, images of many sizes (the
    second encoder's calls agreed across processes under ZeRO-3 and FSDP2): losses equal to 1e-5 (float32; the
    reduce sums in another order). Every process wrote its own shards; the merged export loads with `from_pretrained`
    and holds the one-process run's weights (1e-5)."""
    if engine != "fsdp2": _needs_deepspeed()
    r = _launch(ENGINES[engine], _stage_config(tmp_path, engine, 2))
    assert r.stderr.count("finished at step 9 (max_steps)") == 1
    sub, files = SHARDS[engine]
    shards = tmp_path / engine / "checkpoints" / "step-0000008" / sub
    assert sorted(p.name for p in shards.iterdir() if p.name in files) == files       # really sharded, one file per process
    _assert_same_curve(one_process_stages, tmp_path / engine, 9, 1e-5)
    na, nb = _norms(one_process_stages), _norms(tmp_path / engine)      # per-group norms of the whole tensors, every engine
    assert na.keys() == nb.keys() and len(na) > 20, sorted(set(na) ^ set(nb))[:6]
    for k in na: assert abs(na[k] - nb[k]) <= 1e-4 * max(1.0, abs(na[k])), (k, na[k], nb[k])
    a, b = _model_params(one_process_stages / "model"), _model_params(tmp_path / engine / "model")
    assert a.keys() == b.keys() and not any(".lora_" in k for k in b)                  # merged: a plain model folder
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


@pytest.mark.parametrize("engine", list(ENGINES))
def test_sharded_engine_kill_and_resume_is_exact(tmp_path, engine):
    "Both processes SIGKILLed at step 7; resumed from step 4 (weights, each process's shards, RNG): the uninterrupted curve (1e-6)."
    if engine != "fsdp2": _needs_deepspeed()
    full = _write(tmp_path, "full.json", _config(tmp_path, tmp_path / "full", max_steps=12, batch_size=2))
    _launch(ENGINES[engine], full)
    killed = _write(tmp_path, "killed.json", _config(tmp_path, tmp_path / "killed", max_steps=12, batch_size=2,
                                                     callbacks=["dual_vision_nb.test_utils:KillAtStep"]))
    r = _launch(ENGINES[engine], killed, env={"DVN_KILL_AT_STEP": "7"}, check=False)
    assert r.returncode != 0
    assert json.loads((tmp_path / "killed" / "checkpoints" / "latest.json").read_text())["step"] == 4
    cfg = json.loads(killed.read_text()); cfg["training"]["resume"] = "latest"
    _launch(ENGINES[engine], _write(tmp_path, "resume.json", cfg), env={"DVN_KILL_AT_STEP": "-1"})
    _assert_same_curve(tmp_path / "full", tmp_path / "killed", 12, 1e-6)


def test_fsdp2_activation_checkpointing_and_accumulation_match_one_process(tmp_path):
    """FSDP2 with activation checkpointing (accelerate wraps each layer) and 2 accumulation steps x batch 1 x 2 processes
    = 1 process with 2 x batch 2 (1e-5)."""
    one = _write(tmp_path, "one.json", _config(tmp_path, tmp_path / "one", max_steps=5, batch_size=2, gradient_accumulation_steps=2))
    _dvn_train("--config", str(one))
    yaml = tmp_path / "fsdp2_ac.yaml"
    yaml.write_text((EXAMPLES / "fsdp2.yaml").read_text().replace("fsdp_activation_checkpointing: false", "fsdp_activation_checkpointing: true"))
    assert "fsdp_activation_checkpointing: true" in yaml.read_text()
    cfg = _config(tmp_path, tmp_path / "ac", max_steps=5, batch_size=1, gradient_accumulation_steps=2,
                  callbacks=["dual_vision_nb.test_utils:ReportWrappers"])
    r = _launch(yaml, _write(tmp_path, "ac.json", cfg))
    assert r.stdout.count("wrappers: FSDPCheckpointWrapper") == 2, r.stdout[-2000:]      # both processes checkpoint layers
    _assert_same_curve(tmp_path / "one", tmp_path / "ac", 5, 1e-5)


def test_a_launch_that_would_fall_back_to_ddp_is_refused(tmp_path):
    "ACCELERATE_USE_CPU=true turns accelerate's DeepSpeed off (the run would be plain DDP); the trainer says so and stops."
    _needs_deepspeed()
    cfg = _write(tmp_path, "c.json", _config(tmp_path, tmp_path / "c", max_steps=2, batch_size=2))
    r = _launch("deepspeed_zero2.yaml", cfg, env={"ACCELERATE_USE_CPU": "true"}, check=False)
    assert r.returncode != 0 and "asked for DEEPSPEED, but the run got MULTI_CPU" in r.stderr and "unset it" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "c" / "metrics.csv").exists()


def test_fsdp_v1_without_a_gpu_is_refused(tmp_path):
    "On the CPU the trainer runs FSDP2 only; an FSDP version 1 launch stops before training and names the YAML to use."
    cfg = _write(tmp_path, "c.json", _config(tmp_path, tmp_path / "c", max_steps=2, batch_size=2))
    r = _launch("fsdp.yaml", cfg, check=False)
    assert r.returncode != 0 and "FSDP version 1 without a GPU" in r.stderr and "fsdp2.yaml" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "c" / "metrics.csv").exists()


@pytest.mark.parametrize("engine", ["zero2", "fsdp2"])
def test_one_process_bad_loss_skips_the_step_on_every_process(tmp_path, engine):
    """Under ZeRO the gradients live in DeepSpeed's partitions, under FSDP2 in each process's shards, so the NaN guard
    decides on every process's loss: a non-finite loss on process 1 alone makes both skip that step (no hang, no
    half-applied step), and the run goes on."""
    if engine != "fsdp2": _needs_deepspeed()
    cfg = _config(tmp_path, tmp_path / "nan", max_steps=6, batch_size=2, callbacks=["dual_vision_nb.test_utils:NaNLossAtStep"])
    _launch(ENGINES[engine], _write(tmp_path, "nan.json", cfg), env={"DVN_NAN_AT_STEP": "3", "DVN_NAN_RANK": "1"})
    events = [json.loads(l) for l in (tmp_path / "nan" / "events.jsonl").read_text().splitlines()]
    skips = [e for e in events if e.get("event") == "skip_nonfinite"]
    assert [e["step"] for e in skips] == [2], skips
    assert sorted(_curve(tmp_path / "nan")) == list(range(1, 7))

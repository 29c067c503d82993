"""Nothing silent, nothing past the end, as a user meets it: the installed `dvn_train` / `dvn_infer` in real processes,
a finished run resumed, a crash, Ctrl-C and SIGTERM (also under 2 DDP processes), a wall-clock budget, bad records
found while training, one reading path for the data file, text-only records."""
import csv, hashlib, json, os, shutil, signal, subprocess, time
from pathlib import Path
import pytest
from PIL import Image
from dual_vision_nb.test_utils import run_dvn_train as _dvn_train, tiny_run_config as _config, write_config as _write
from dual_vision_nb.config import read_run_state



def _curve(run_dir, name="train/loss"):
    return {int(r["step"]): float(r["value"]) for r in csv.DictReader((Path(run_dir) / "metrics.csv").open()) if r["name"] == name}


def _files(run_dir):
    "Every file of a run folder with its content hash and modification time."
    return {str(p.relative_to(run_dir)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(Path(run_dir).rglob("*")) if p.is_file()}


def _latest(run_dir): return json.loads((Path(run_dir) / "checkpoints" / "latest.json").read_text())["step"]


def _start(args, env, **kw):
    "dvn_train (or any command) in the background, offline, one thread."
    return subprocess.Popen(args, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for_step(run_dir, step, proc, timeout=300):
    "Wait until the run has logged `step` (its metrics.csv), while the process lives."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise AssertionError(f"ended before step {step}: {proc.communicate()[1][-2000:]}")
        p = Path(run_dir) / "metrics.csv"
        if p.exists() and _curve(run_dir) and max(_curve(run_dir)) >= step: return
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def test_finished_run_resumed_changes_nothing_unless_the_budget_grows(tmp_path):
    run = tmp_path / "run"
    cfg = _write(tmp_path, "run.json", _config(tmp_path, run, max_steps=8))
    _dvn_train("--config", str(cfg))
    before = _files(run)
    r = _dvn_train("--config", str(cfg), "--resume", "latest")
    assert "already finished at step 8 (max_steps); nothing was changed" in r.stderr, r.stderr[-2000:]
    assert _files(run) == before                                          # not a byte, not a timestamp
    # a higher budget trains on; the LR schedule keeps its 8-step horizon (cosine, ended at 0) and says so
    r = _dvn_train("--config", str(cfg), "--resume", "latest", "--max_steps", "12")
    assert "finished at step 12 (max_steps)" in r.stderr and "resume: keeping the run's schedule (cosine, 8 steps" in r.stderr
    assert "Steps 9-12 will run at the schedule's final LR (0)" in r.stderr and "--reschedule" in r.stderr
    assert sorted(_curve(run)) == list(range(1, 13))
    assert all(v == 0.0 for s, v in _curve(run, "lr/llm").items() if s > 8)
    state = read_run_state(run)
    assert (state["state"], state["reason"], state["step"], state["model_step"]) == ("finished", "max_steps", 12, 12)
    # --reschedule stretches the horizon to the new budget instead
    r = _dvn_train("--config", str(cfg), "--resume", "latest", "--max_steps", "16", "--reschedule")
    assert "resume: reschedule: the LR schedule now spans 16 steps" in r.stderr
    assert all(v > 0 for s, v in _curve(run, "lr/llm").items() if 12 < s < 16)


def test_a_crash_leaves_the_last_checkpoint_and_no_export(tmp_path):
    run, env = tmp_path / "run", {"DVN_RAISE_AT_STEP": "6"}
    cfg = _write(tmp_path, "crash.json", _config(tmp_path, run, max_steps=12, callbacks=["dual_vision_nb.test_utils:RaiseAtStep"]))
    r = _dvn_train("--config", str(cfg), env=env, check=False)
    assert r.returncode == 1 and "dvn_train: unexpected RuntimeError: a bug in step 6 (run it again with --debug" in r.stderr
    assert "crashed after step 5: RuntimeError: a bug in step 6" in r.stderr and "Traceback" not in r.stderr
    assert f"resume       dvn_train --config {run / 'config.json'} --resume latest" in r.stderr
    assert not (run / "model").exists() and _latest(run) == 4                  # no export; no checkpoint of a half step
    state = read_run_state(run)
    assert (state["state"], state["step"], state["checkpoint"]) == ("crashed", 5, "step-0000004")
    # inference reads the state: the run folder gives its latest checkpoint, and says so
    image = str(next((tmp_path / "data" / "images").glob("val_*.png")))
    r = subprocess.run([shutil.which("dvn_infer"), "--checkpoint", str(run), "--image", image, "--question", "How many?",
                        "--max_new_tokens", "2"], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0 and "the run is crashed at step 5" in r.stderr and "using its latest checkpoint, step-0000004" in r.stderr
    r = _dvn_train("--config", str(run / "config.json"), "--resume", "latest", env={**env, "DVN_RAISE_AT_STEP": "-1"})
    assert "finished at step 12" in r.stderr and (run / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_at_a_step_with_a_checkpoint_and_resumes_exactly(tmp_path, sig):
    full, run = tmp_path / "full", tmp_path / "run"
    _dvn_train("--config", str(_write(tmp_path, "full.json", _config(tmp_path, full, max_steps=30, num_epochs=3))))
    cfg = _write(tmp_path, "slow.json", _config(tmp_path, run, max_steps=30, num_epochs=3, callbacks=["dual_vision_nb.test_utils:SleepEachStep"]))
    env = {"DVN_STEP_SLEEP": "0.15"}
    p = _start([shutil.which("dvn_train"), "--config", str(cfg)], env)
    _wait_for_step(run, 6, p)
    p.send_signal(getattr(signal, sig))
    out, err = p.communicate(timeout=120)
    assert p.returncode == {"SIGINT": 130, "SIGTERM": 143}[sig], err[-2000:]
    state = read_run_state(run)
    n = state["step"]
    assert state["state"] == "interrupted" and state["reason"] == sig and 6 <= n < 30
    assert f"{sig}: stopping at the end of this step" in err and f"interrupted by {sig} at step {n}" in err
    assert _latest(run) == n and not (run / "model").exists()                 # a checkpoint at the step; no export
    command = next(l for l in err.splitlines() if l.strip().startswith("resume")).split(None, 1)[1].split()
    assert command == ["dvn_train", "--config", str(run / "config.json"), "--resume", "latest"]
    _dvn_train(*command[1:], env={**env, "DVN_STEP_SLEEP": "0"})              # the command it printed
    a, b = _curve(full), _curve(run)
    assert sorted(a) == sorted(b) == list(range(1, 31))
    for s in a: assert abs(a[s] - b[s]) <= 1e-6, (s, a[s], b[s])
    assert read_run_state(run)["state"] == "finished"


@pytest.mark.xdist_group("launch")      # 2 processes on accelerate's default port: one at a time under xdist
def test_sigterm_under_two_processes_stops_both_at_the_same_step(tmp_path):
    "Both DDP processes agree on the stop at a step boundary; the resumed 2-process run equals one process (1e-5)."
    if shutil.which("accelerate") is None: pytest.fail("accelerate CLI not on PATH")
    one, two = tmp_path / "one", tmp_path / "two"
    kw = dict(max_steps=16, max_grad_norm=None)
    _dvn_train("--config", str(_write(tmp_path, "one.json", _config(tmp_path, one, batch_size=4, **kw))))
    cfg = _write(tmp_path, "two.json", _config(tmp_path, two, batch_size=2, callbacks=["dual_vision_nb.test_utils:SleepEachStep"], **kw))
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", shutil.which("dvn_train"), "--config"]
    env = {"DVN_STEP_SLEEP": "0.2", "ACCELERATE_USE_CPU": "true"}
    p = _start(launch + [str(cfg)], env, start_new_session=True)
    _wait_for_step(two, 4, p)
    os.killpg(p.pid, signal.SIGTERM)                                         # the launcher and both workers
    out, err = p.communicate(timeout=180)
    state = read_run_state(two)
    assert state["state"] == "interrupted" and state["reason"] == "SIGTERM", err[-3000:]
    ckpt = two / "checkpoints" / state["checkpoint"]
    assert _latest(two) == state["step"] and {f.name for f in ckpt.glob("rng_*.json")} == {"rng_0.json", "rng_1.json"}
    r = subprocess.run(launch + [str(two / "config.json"), "--resume", "latest"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env, "DVN_STEP_SLEEP": "0"})
    assert r.returncode == 0, r.stderr[:3000]
    a, b = _curve(one), _curve(two)
    assert sorted(a) == sorted(b) == list(range(1, 17))
    for s in a: assert abs(a[s] - b[s]) <= 1e-5, (s, a[s], b[s])


def test_max_time_stops_and_exports_and_the_run_goes_on(tmp_path):
    run, env = tmp_path / "run", {"DVN_STEP_SLEEP": "0.3"}
    cfg = _write(tmp_path, "timed.json", _config(tmp_path, run, max_steps=20, max_time=2, callbacks=["dual_vision_nb.test_utils:SleepEachStep"]))
    r = _dvn_train("--config", str(cfg), env=env)
    state = read_run_state(run)
    assert (state["state"], state["reason"]) == ("stopped", "max_time") and 1 <= state["step"] < 20
    assert state["model_step"] == state["step"] and (run / "model" / "model.safetensors").exists()   # exported, like max_steps
    assert f"stopped at step {state['step']} (max_time)" in r.stderr
    r = _dvn_train("--config", str(run / "config.json"), "--resume", "latest", "--max_time", "01:00:00", env={**env, "DVN_STEP_SLEEP": "0"})
    assert "finished at step 20 (max_steps)" in r.stderr and sorted(_curve(run)) == list(range(1, 21))
    assert "Writing model shards" not in r.stderr                              # no progress bars of transformers' own


def _shapes_records(tmp_path, n):
    cfg = _config(tmp_path, tmp_path / "unused")                               # writes the demo set under tmp_path/data
    return json.loads(Path(cfg["data"]["train_data_path"]).read_text())[:n], cfg


def test_bad_records_found_while_training_are_named_once_and_counted(tmp_path):
    records, cfg = _shapes_records(tmp_path, 16)
    good = tmp_path / "data" / records[0]["image_path"]
    (tmp_path / "data" / "images" / "truncated.png").write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    bad = [{**records[1], "image_path": "images/truncated.png", "id": "cut"}, {**records[2], "image_path": "images/gone.png"}]
    data = tmp_path / "data" / "with_bad.json"; data.write_text(json.dumps(records + bad))
    run = tmp_path / "run"
    cfg["data"].update(train_data_path=str(data), on_bad_record="skip")
    cfg["training"].update(output_dir=str(run), num_epochs=3, save_every_steps=None)
    r = _dvn_train("--config", str(_write(tmp_path, "bad.json", cfg)))
    assert f"train data: {data}: 1 of 18 records skipped" in r.stderr + r.stdout and "record 17: image 'images/gone.png' not found" in r.stdout
    found = [l for l in r.stderr.splitlines() if "skipped record 16" in l]
    assert len(found) == 1 and "id 'cut'" in found[0] and "truncated.png' cannot be decoded" in found[0], r.stderr[-2000:]
    assert "(record 0 took its place)" in found[0]                            # the next good record, wrapping round
    assert "2 records skipped: 1 when loaded, 1 while training" in r.stderr
    counts = _curve(run, "data/skipped_records")
    assert sorted(counts.values()) == [1.0, 2.0] and max(_curve(run)) == 3 * 5    # 17 usable samples, batches of 4
    events = [json.loads(l) for l in (run / "events.jsonl").read_text().splitlines()]
    assert [e["index"] for e in events if e["event"] == "skip_record"] == [16]
    # validate: full finds it before step 1
    cfg["data"]["validate"] = "full"; cfg["training"]["output_dir"] = str(tmp_path / "full")
    r = _dvn_train("--config", str(_write(tmp_path, "full.json", cfg)))
    assert "2 of 18 records skipped" in r.stdout and "found by validate='full'" in r.stdout and "skipped record" not in r.stderr


def test_one_reading_path_for_the_data_file(tmp_path):
    records, cfg = _shapes_records(tmp_path, 8)
    lines = [json.dumps(r) for r in records[:3]] + ['{"image_path": "images/train_00003.png", "conversations": ['] + \
            ["[1, 2]", json.dumps({**records[4], "conversations": "text"})] + [json.dumps(r) for r in records[5:]]
    data = tmp_path / "data" / "train.jsonl"; data.write_text("\n".join(lines) + "\n")
    cfg["data"].update(train_data_path=str(data), val_data_path=None)
    cfg["training"].update(output_dir=str(tmp_path / "run"), max_steps=2)
    r = _dvn_train("--config", str(_write(tmp_path, "strict.json", cfg)), check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"dvn_train: {data} line 4 (record 3): invalid JSON at column") and "one complete record per line" in r.stderr
    cfg["data"]["on_bad_record"] = "skip"
    r = _dvn_train("--config", str(_write(tmp_path, "lenient.json", cfg)))
    assert "3 of 9 records skipped" in r.stdout and "expected a JSON object, got list" in r.stdout and "has no 'conversations' list" in r.stdout


def test_text_only_records_are_explicit(tmp_path):
    records, cfg = _shapes_records(tmp_path, 8)
    text_only = {"conversations": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]}
    data = tmp_path / "data" / "mixed.json"; data.write_text(json.dumps(records + [text_only]))
    cfg["data"].update(train_data_path=str(data), val_data_path=None)
    cfg["training"].update(output_dir=str(tmp_path / "run"), max_steps=2)
    r = _dvn_train("--config", str(_write(tmp_path, "refused.json", cfg)), check=False)
    assert r.returncode == 2 and f"{data} record 8: has no image" in r.stderr and "data.allow_text_only: true" in r.stderr
    cfg["data"]["allow_text_only"] = True
    r = _dvn_train("--config", str(_write(tmp_path, "allowed.json", cfg)))
    assert "0 of 9 records skipped; 1 text-only records kept (no image)" in r.stdout

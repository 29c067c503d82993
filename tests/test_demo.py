"The main job end to end: the demo command and its artifacts, and proof that the pipeline learns from pixels."
import json, random
from PIL import Image
from dual_vision_nb.data import load_records
from dual_vision_nb.evaluation import answer_accuracy
from dual_vision_nb.demo import run_demo
from dual_vision_nb.recipe import train


def test_demo_command_writes_the_run(tmp_path):
    summary = run_demo(output_dir=str(tmp_path / "demo"), n_train=120, n_val=30, epochs=1, seed=0)
    run = tmp_path / "demo" / "run"
    for p in ("model/model.safetensors", "model/chat_template.jinja", "metrics.csv", "demo_summary.json",
              "checkpoints/latest.json", "config.json", "val_answers.jsonl"):
        assert (run / p).exists(), p
    saved = json.loads((run / "demo_summary.json").read_text())
    assert saved["n_val"] == 30 and 0 <= saved["held_out_accuracy"] <= 1 and 0 < saved["blind_baseline"] < 1
    assert len((run / "val_answers.jsonl").read_text().splitlines()) == 30
    assert sum(d["n"] for d in saved["by_question"].values()) == 30


def test_short_demo_beats_the_blind_baseline(tmp_path):
    "The embedded default, cut to 400 steps (a fifth of it): held-out accuracy well above a model that ignores the image."
    s = run_demo(output_dir=str(tmp_path / "demo"), n_val=200, seed=0, max_steps=400)
    assert s["steps"] == 400
    assert s["held_out_accuracy"] >= s["blind_baseline"] + 0.15, s
    assert s["by_question"]["count"]["accuracy"] >= 0.6, s["by_question"]   # counting: answered from the pixels (blind: ~0.35)


def test_demo_console_script_interrupted_and_resumed(tmp_path):
    "The README's main command: Ctrl-C stops it with a checkpoint and the exact command to go on, which finishes it (exit 0)."
    import csv, os, shutil, signal, subprocess, time
    exe = shutil.which("dvn_demo"); assert exe, "pip install -e . registers dvn_demo"
    out, env = tmp_path / "d", {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    p = subprocess.Popen([exe, "--output_dir", str(out), "--n_train", "64", "--n_val", "8", "--epochs", "20"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics, t0 = out / "run" / "metrics.csv", time.time()
    while not (metrics.exists() and any(r["name"] == "train/loss" and int(r["step"]) >= 3 for r in csv.DictReader(metrics.open()))):
        assert p.poll() is None and time.time() - t0 < 300, p.communicate()[1][-2000:]
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, err[-2000:]
    command = f"dvn_demo --output_dir {out} --n_train 64 --n_val 8 --epochs 20 --resume"
    assert f"resume       {command}" in err and "interrupted by SIGINT at step" in err
    images = {q: q.stat().st_mtime_ns for q in (out / "data" / "images").iterdir()}
    r = subprocess.run([exe, *command.split()[1:]], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "held-out accuracy" in r.stdout and "after 80 steps" in r.stdout and "next:" in r.stdout
    assert {q: q.stat().st_mtime_ns for q in (out / "data" / "images").iterdir()} == images     # the demo set is reused
    assert json.loads((out / "run" / "run_state.json").read_text())["state"] == "finished"


COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 60, 220), "yellow": (230, 210, 20),
           "purple": (140, 40, 160), "orange": (240, 140, 20)}


def test_pipeline_learns_from_pixels(tmp_path):
    "Records -> dataset -> Learner -> generate: a question only the image can answer, learned well above chance (1/6)."
    rnd = random.Random(0); (tmp_path / "images").mkdir()
    for split, n in (("train", 480), ("val", 60)):
        recs = []
        for i in range(n):
            name = rnd.choice(list(COLOURS)); size = (rnd.choice([56, 84, 112]), rnd.choice([56, 84, 112]))
            Image.new("RGB", size, COLOURS[name]).save(tmp_path / f"images/{split}_{i}.png")
            recs.append({"image_path": f"images/{split}_{i}.png", "conversations": [
                {"role": "user", "content": "What color is it?"}, {"role": "assistant", "content": name}]})
        (tmp_path / f"{split}.json").write_text(json.dumps(recs))
    learn = train({"model": {"common_dim": 32},
                   "training": {"output_dir": str(tmp_path / "run"), "num_epochs": 2, "batch_size": 8,
                                "learning_rate": 3e-3, "scheduler": "constant"},
                   "data": {"train_data_path": str(tmp_path / "train.json"), "val_data_path": str(tmp_path / "val.json")},
                   "logging": {"tensorboard": False, "progress_bar": False}})
    acc, rows = answer_accuracy(learn.unwrapped, learn.processor, load_records(tmp_path / "val.json")[0])
    assert acc >= 0.9, rows[:10]

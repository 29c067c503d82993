"The main job end to end: the demo command and its artifacts, and proof that the pipeline learns from pixels."
import json, random
from PIL import Image
from dual_vision_nb.data import load_records
from dual_vision_nb.trainer import answer_accuracy, run_demo, train


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


def test_demo_console_script_exits_cleanly(tmp_path):
    "The README's main command: dvn_demo must exit 0 (a console script's return value is its exit status)."
    import os, shutil, subprocess
    exe = shutil.which("dvn_demo"); assert exe, "pip install -e . registers dvn_demo"
    r = subprocess.run([exe, "--output_dir", str(tmp_path / "d"), "--n_train", "24", "--n_val", "8", "--epochs", "1"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "held-out accuracy" in r.stdout and "next:" in r.stdout


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

"`dvn_infer` end to end, as the installed console script: every checkpoint kind, encoder comparison, benchmark JSON, batch files with bad lines."
import contextlib, io, json, os, shutil, subprocess
from pathlib import Path
import pytest, torch
from PIL import Image
from dual_vision_nb.data import make_shapes_dataset, load_records
from dual_vision_nb.recipe import train
from dual_vision_nb.inference import load_for_inference
from dual_vision_nb.test_utils import tiny_model_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A tiny trained run: model/, best_model/ and two checkpoints, plus its data."
    tmp = tmp_path_factory.mktemp("infer")
    data = make_shapes_dataset(tmp / "data", n_train=32, n_val=8, seed=0)
    cfg = {"model": tiny_model_config(),
           "training": {"output_dir": str(tmp / "run"), "batch_size": 8, "learning_rate": 3e-3, "num_epochs": 1,
                        "save_every_steps": 2, "keep_last": 0, "warmup_steps": 0},
           "data": {"train_data_path": str(data["train"]), "val_data_path": str(data["val"]), "max_length": 256},
           "logging": {"tensorboard": False, "progress_bar": False}}
    with contextlib.redirect_stdout(io.StringIO()): train(cfg)
    records, _ = load_records(data["val"])
    return {"dir": tmp / "run", "data": data, "records": records, "tmp": tmp}


def _dvn_infer(*args, check=True):
    exe = shutil.which("dvn_infer")
    assert exe, "dvn_infer is not on PATH: pip install -e . registers the console scripts"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([exe, *map(str, args)], env=env, capture_output=True, text=True, timeout=120)
    if check: assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    return r


def _image(run, i=0): return str(Path(run["records"][i]["_image_root"]) / run["records"][i]["images"][0])
def _ask(image, q): return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": q}]}]


def test_every_folder_kind_loads_the_right_weights(run):
    """A save_pretrained folder, a mid-run checkpoint (rebuilt from the run's saved config) and the run folder: the CLI's answer
    and fusion weights equal those of the same folder loaded in process, and the early checkpoint's differ from the final's."""
    ckpts = sorted((run["dir"] / "checkpoints").glob("step-*"))
    assert len(ckpts) >= 2
    q, msgs = "What color is the circle?", _ask(_image(run), "What color is the circle?")
    final, early = load_for_inference(run["dir"] / "model"), load_for_inference(ckpts[0])
    w_final, w_early = final.image_fusion_weights(msgs)[0, 0].item(), early.image_fusion_weights(msgs)[0, 0].item()
    assert w_final != w_early                                                   # really other weights
    for folder, model, w in [(run["dir"] / "model", final, w_final), (ckpts[0], early, w_early), (run["dir"], final, w_final)]:
        out = run["tmp"] / "answer.json"
        r = _dvn_infer("--checkpoint", folder, "--image", _image(run), "--question", q, "--max_new_tokens", 8,
                       "--compare_encoders", "--json_out", out)
        res = json.loads(out.read_text())
        assert res["compare_encoders"]["fused"]["w_qwen"] == w, (folder, res["compare_encoders"]["fused"], w)
        assert res["answer"] == model.chat(msgs, max_new_tokens=8, do_sample=False), (folder, res["answer"])
        assert res["compare_encoders"]["fused"]["answer"] == res["answer"]
    r = _dvn_infer("--checkpoint", ckpts[0], "--image", _image(run), "--question", q, "--max_new_tokens", 8, "--stream")
    assert r.stdout == early.chat(msgs, max_new_tokens=8, do_sample=False) + "\n"


def test_compare_encoders_and_benchmark_json(run):
    "--compare_encoders shows each mode's answer and weights; --benchmark measures and writes JSON with --json_out."
    out = run["tmp"] / "cmp.json"
    r = _dvn_infer("--checkpoint", run["dir"] / "model", "--image", Path(_image(run)).resolve().as_uri(),
                   "--question", "Where is the shape?", "--compare_encoders", "--benchmark", "--max_new_tokens", 6,
                   "--n_runs", 2, "--json_out", out)
    res = json.loads(out.read_text())
    cmp = res["compare_encoders"]
    assert set(cmp) == {"fused", "qwen", "dinov2"}
    assert cmp["qwen"]["fusion_weights"] == [[1.0, 0.0]] and cmp["dinov2"]["fusion_weights"] == [[0.0, 1.0]]
    assert abs(cmp["fused"]["w_qwen"] + cmp["fused"]["w_dinov2"] - 1) < 1e-6
    assert 0 < cmp["fused"]["w_qwen"] < 1
    model = load_for_inference(run["dir"] / "model")
    w = model.image_fusion_weights(_ask(_image(run), "Where is the shape?"))
    assert abs(w[0, 0].item() - cmp["fused"]["w_qwen"]) < 1e-6
    table = [l.split() for l in r.stdout.splitlines() if l.split()[:1] in (["fused"], ["qwen"], ["dinov2"])]
    assert [t[0] for t in table] == ["fused", "qwen", "dinov2"]
    b = res["benchmark"]
    assert b["new_tokens"] == 6 and b["n_runs"] == 2 and len(b["prefill_latency_s_runs"]) == 2
    assert b["prefill_latency_s"] > 0 and b["decode_tokens_per_s"] > 0 and b["peak_memory_mb"] > 50
    assert b["peak_memory_kind"] == ("cuda_max_memory_allocated" if torch.cuda.is_available() else "process_peak_rss")
    assert b["image_tokens"] == sum(int(torch.tensor(g).prod()) for g in b["image_grid_thw"]) // 4 > 0
    assert json.loads(r.stdout[r.stdout.index("{"):])["decode_tokens_per_s"] == b["decode_tokens_per_s"]


def test_batch_file_answers_good_lines_and_reports_bad_ones(run):
    "--batch: one output line per good record, equal to chat_batch in process; bad lines named by number, counted, skipped."
    root = run["data"]["val"].parent
    rel = os.path.relpath(_image(run, 1), root)
    lines = [{"id": 1, "image": rel, "question": "What color is the circle?"},
             {"id": 2, "image": "images/missing.png", "question": "What is it?"},
             {"id": 3, "image": rel, "question": ""},
             "{broken",
             {"image_path": rel, "conversations": [{"role": "user", "content": "<image>How many shapes are there?"},
                                                   {"role": "assistant", "content": "2"}]},
             {"id": 6, "question": "no image here"},
             {"id": 7, "image": str(Path(_image(run, 2)).resolve()), "question": "Is there a red circle?"}]
    batch = root / "batch.jsonl"
    batch.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    out, summary = run["tmp"] / "answers.jsonl", run["tmp"] / "summary.json"
    r = _dvn_infer("--checkpoint", run["dir"], "--batch", batch, "--output", out, "--batch_size", 2, "--max_new_tokens", 6,
                   "--json_out", summary)
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [row["line"] for row in rows] == [1, 5, 7]
    assert rows[1]["reference"] == "2" and rows[0]["id"] == 1
    s = json.loads(summary.read_text())
    assert (s["n_records"], s["n_answered"], s["n_skipped"]) == (7, 3, 4)
    assert [k["line"] for k in s["skipped"]] == [2, 3, 4, 6]
    assert "7 records, 3 answered, 4 skipped" in r.stderr
    for n, word in [(2, "missing.png"), (3, "no question"), (4, "invalid JSON"), (6, "no image")]:
        assert any(l.strip().startswith(f"line {n}:") and word in l for l in r.stderr.splitlines()), (n, r.stderr)
    model = load_for_inference(run["dir"] / "model")
    convs = [_ask(_image(run, 1), "What color is the circle?"), _ask(_image(run, 1), "How many shapes are there?"),
             _ask(_image(run, 2), "Is there a red circle?")]
    assert [row["answer"] for row in rows] == model.chat_batch(convs, max_new_tokens=6, do_sample=False)


def test_user_errors_exit_with_a_message(run):
    "Wrong arguments and files give one clear line and a non-zero status, never a traceback; an all-bad batch exits 1."
    r = _dvn_infer("--image", "a.png", "--question", "q", check=False)
    assert r.returncode == 2 and r.stderr.strip().startswith("dvn_infer: --checkpoint: required") and "Traceback" not in r.stderr
    r = _dvn_infer("--checkpoint", run["dir"] / "model", "--image", run["tmp"] / "nope.png", "--question", "q", check=False)
    assert r.returncode == 2 and "--image:" in r.stderr and "nope.png': no such file" in r.stderr and "Traceback" not in r.stderr
    r = _dvn_infer("--checkpoint", run["tmp"] / "no_such_run", "--image", _image(run), "--question", "q", check=False)
    assert r.returncode == 2 and "no such folder" in r.stderr
    r = _dvn_infer("--checkpoint", run["dir"] / "model", "--question", "How many shapes are there?", "--max_new_tokens", "4", check=False)
    assert r.returncode == 0 and "no --image: asking a text-only question" in r.stderr and r.stdout.endswith("\n")   # an answer line
    bad = run["tmp"] / "all_bad.jsonl"; bad.write_text('{"question": "x"}\n{"image": "gone.png", "question": "y"}\n')
    r = _dvn_infer("--checkpoint", run["dir"] / "model", "--batch", bad, "--output", run["tmp"] / "none.jsonl", check=False)
    assert r.returncode == 1 and "2 records, 0 answered, 2 skipped" in r.stderr

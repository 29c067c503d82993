"`dvn_eval` end to end, as the installed console script, and the analysis outputs on a real (tiny) run folder."
import contextlib, io, json, os, shutil, subprocess
from pathlib import Path
import pytest
from dual_vision_nb.data import make_shapes_dataset, load_records, record_to_messages
from dual_vision_nb.recipe import train
from dual_vision_nb.inference import load_for_inference
from dual_vision_nb.analysis import analyze_model_outputs, plot_training_curves, read_metrics
from dual_vision_nb.evaluation import evaluate_records
from dual_vision_nb.test_utils import tiny_model_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A tiny run trained on VQA and captioning records, and a mixed evaluation file with one bad record."
    tmp = tmp_path_factory.mktemp("analysis")
    data = make_shapes_dataset(tmp / "data", n_train=24, n_val=6, seed=0)
    train_mixed = tmp / "data" / "train_mixed.json"
    train_mixed.write_text(json.dumps(json.loads(data["train"].read_text()) + json.loads(data["train_captions"].read_text())))
    cfg = {"model": tiny_model_config(),
           "training": {"output_dir": str(tmp / "run"), "batch_size": 8, "learning_rate": 3e-3, "num_epochs": 1,
                        "save_every_steps": 3, "keep_last": 0, "warmup_steps": 1},
           "data": {"train_data_path": str(train_mixed), "val_data_path": str(data["val"]), "max_length": 256},
           "logging": {"tensorboard": False, "progress_bar": False}}
    with contextlib.redirect_stdout(io.StringIO()): train(cfg)
    records = json.loads(data["val"].read_text()) + json.loads(data["val_captions"].read_text())
    records.insert(3, {"image_path": "images/gone.png", "conversations": [{"role": "user", "content": "What?"},
                                                                          {"role": "assistant", "content": "x"}]})
    evalfile = tmp / "data" / "eval.jsonl"
    evalfile.write_text("".join(json.dumps(r) + "\n" for r in records))
    return {"dir": tmp / "run", "data": data, "eval": evalfile, "tmp": tmp}


def _dvn_eval(*args, check=True):
    exe = shutil.which("dvn_eval")
    assert exe, "dvn_eval is not on PATH: pip install -e . registers the console scripts"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([exe, *map(str, args)], env=env, capture_output=True, text=True, timeout=120)
    if check: assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    return r


def test_dvn_eval_writes_the_metrics_the_library_computes(run):
    "The CLI's JSON equals evaluate_records in process; VQA and captioning records are scored apart; the bad line is skipped."
    out, pred = run["tmp"] / "metrics.json", run["tmp"] / "pred.jsonl"
    r = _dvn_eval("--checkpoint", run["dir"] / "model", "--data", run["eval"], "--output", out, "--predictions", pred,
                  "--max_new_tokens", 24)
    m = json.loads(out.read_text())
    assert "1 of 13 records skipped" in r.stderr and "line 4" in r.stderr
    assert any("gone.png" in l for l in r.stderr.splitlines())
    assert m["n_records"] == 12 and m["n_skipped"] == 1
    assert m["vqa"]["n"] == 6 and m["captioning"]["n"] == 6
    for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro"): assert 0 <= m["vqa"][k] <= 1
    for k in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge1", "rouge2", "rougeL"): assert 0 <= m["captioning"][k] <= 1
    assert m["perplexity"] > 1 and m["n_tokens"] > 12
    records, _ = load_records(run["eval"], on_bad_record="skip")
    want, rows = evaluate_records(load_for_inference(run["dir"] / "model"), records, max_new_tokens=24)
    for k in ("vqa", "captioning", "perplexity", "n_tokens"): assert m[k] == want[k], (k, m[k], want[k])
    got_rows = [json.loads(l) for l in pred.read_text().splitlines()]
    assert [g["answer"] for g in got_rows] == [w["answer"] for w in rows]
    assert [g["source_index"] for g in got_rows] == [i for i in range(13) if i != 3]


def test_checkpoint_folder_evaluates_like_the_model_folder(run):
    "The last checkpoint holds the final weights: evaluating it (rebuilt from the run) gives the model folder's metrics."
    last = sorted((run["dir"] / "checkpoints").glob("step-*"))[-1]
    a, b = run["tmp"] / "a.json", run["tmp"] / "b.json"
    _dvn_eval("--checkpoint", last, "--data", run["data"]["val_captions"], "--output", a, "--max_new_tokens", 12)
    _dvn_eval("--checkpoint", run["dir"] / "model", "--data", run["data"]["val_captions"], "--output", b, "--max_new_tokens", 12)
    ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ma["vqa"] is None and ma["captioning"]["n"] == 6
    for k in ("captioning", "perplexity", "n_tokens"): assert ma[k] == mb[k]


def test_dvn_eval_errors_are_one_clear_line(run):
    "--on_bad_record error names the file and the record; missing arguments say what is required; no tracebacks."
    r = _dvn_eval("--checkpoint", run["dir"] / "model", "--data", run["eval"], "--on_bad_record", "error", check=False)
    assert r.returncode == 2 and "eval.jsonl line 4 (record 3)" in r.stderr and "gone.png" in r.stderr, r.stderr[-500:]
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _dvn_eval("--data", run["eval"], check=False)
    assert r.returncode == 2 and r.stderr.strip() == "dvn_eval: --checkpoint: required: --checkpoint DIR and --data FILE"
    r = _dvn_eval("--checkpoint", run["dir"] / "model", "--data", run["tmp"] / "nothing.json", check=False)
    assert r.returncode == 2 and "--data: data file" in r.stderr and "nothing.json' not found" in r.stderr and "Traceback" not in r.stderr
    r = _dvn_eval("--checkpoint", run["dir"] / "model", "--data", run["eval"], "--on_bad_record", "error", "--debug", check=False)
    assert r.returncode == 1 and "Traceback" in r.stderr and "RecordError" in r.stderr     # --debug: the traceback


def test_analysis_outputs_on_the_run(run):
    "Training curves read back every logged step; the fusion analysis writes its plots and JSON for the held-out set."
    series = read_metrics(run["dir"])
    steps = series["train/loss"]["step"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 6
    fig = plot_training_curves(run["dir"], save_path=run["tmp"] / "curves.png")
    assert (run["tmp"] / "curves.png").stat().st_size > 10_000 and len(fig.axes) == 4
    model = load_for_inference(run["dir"] / "model")
    records, _ = load_records(run["data"]["val"])
    res = analyze_model_outputs(model, [record_to_messages(r)[:-1] for r in records], run["tmp"] / "fusion")
    assert res["statistics"]["n"] == len(records)
    for name in ("fusion_weight_distribution", "weights_by_question_kind", "weights_by_image_size"):
        assert (run["tmp"] / "fusion" / f"{name}.png").stat().st_size > 5_000
    assert json.loads((run["tmp"] / "fusion" / "analysis.json").read_text())["statistics"] == res["statistics"]

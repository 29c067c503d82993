"Detection head: optimal matching, a loss blind to the order of predictions, teacher/student token counts (padded and packed), the head frozen for N epochs, an exact save/load round trip, bad boxes."
import itertools, json, math
from pathlib import Path
import pytest, torch
from torch.utils.data import DataLoader
from transformers import AutoModelForImageTextToText
from dual_vision_nb.data import RecordError, load_records, make_shapes_dataset
from dual_vision_nb.batching import PackedCollator, PaddedCollator
from dual_vision_nb.detection import DETECTION_TERMS, DetectionCollator, DetectionFreezeCB, DetectionDataset, DetectionLoss, DualVisionForDetection, teacher_student_lm, teacher_student_record
from dual_vision_nb.detection_head import hungarian_match, match_cost
from dual_vision_nb.encoders import build_processor, tiny_dinov2_config, tiny_qwen2_5_vl_config
from dual_vision_nb.trainer import Callback, Learner
from dual_vision_nb.config import DVNConfig, TrainingConfig
from dual_vision_nb.callbacks import FreezeGroupsCB
from dual_vision_nb.recipe import build_run

INPUTS = ("input_ids", "attention_mask", "position_ids", "pixel_values", "image_grid_thw", "mm_token_type_ids", "detection_targets")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("detection")
    data = make_shapes_dataset(tmp / "shapes", n_train=24, n_val=4, seed=0)
    texts = [t["content"] for k in ("train", "train_captions") for r in json.loads(data[k].read_text()) for t in r["conversations"]]
    processor = build_processor(corpus=texts)
    vqa, caps = load_records(data["train"])[0], load_records(data["train_captions"], default_type="captioning")[0]
    # two- and three-image conversations: worked examples first, the student image (with the boxes) last
    convs = [teacher_student_record(vqa[i], [caps[i + 1]] + ([vqa[i + 2]] if i % 2 else [])) for i in range(8)]
    return {"tmp": tmp, "data": data, "processor": processor, "vqa": vqa, "caps": caps, "convs": convs,
            "ds": DetectionDataset(convs, processor)}


def detector(processor, **kw):
    torch.manual_seed(0)
    return DualVisionForDetection.from_encoders(tiny_qwen2_5_vl_config(vocab_size=512), tiny_dinov2_config(), processor=processor,
                                                common_dim=16, detection_num_queries=12, detection_caption_layers=1, **kw)


def forward_loss(model, batch, loss=None):
    out = model(**{k: batch[k] for k in INPUTS if k in batch}, use_cache=False)
    return out, (loss or DetectionLoss())(out, batch["labels"], span_ids=batch["span_ids"], batch=batch)


def test_matching_is_optimal():
    g = torch.Generator().manual_seed(0)
    for Q, G in [(3, 3), (5, 2), (6, 4), (7, 3), (4, 1)]:
        for _ in range(10):
            pred = torch.cat([torch.rand(Q, 2, generator=g), 0.05 + 0.4 * torch.rand(Q, 2, generator=g)], -1)
            gt = torch.cat([torch.rand(G, 2, generator=g), 0.05 + 0.4 * torch.rand(G, 2, generator=g)], -1)
            cost = match_cost(pred, torch.randn(Q, generator=g), gt)
            q, k = hungarian_match(cost)
            best = min(sum(float(cost[qs[j], j]) for j in range(G)) for qs in itertools.permutations(range(Q), G))
            assert k.tolist() == list(range(G)) and len(set(q.tolist())) == G
            assert abs(float(cost[q, k].sum()) - best) < 1e-6
    # hand-made: the objects go to the queries on them, the confident one of two identical boxes wins; a query that
    # is very sure of an object (logit 5) takes the object from an exact but unsure one: the class cost can outweigh geometry
    gt = torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.8, 0.7, 0.2, 0.2]])
    pred = torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.8, 0.7, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1], [0.2, 0.2, 0.1, 0.1]])
    assert hungarian_match(match_cost(pred, torch.tensor([1.0, 0.0, -4.0, 4.0]), gt))[0].tolist() == [3, 1]
    assert hungarian_match(match_cost(pred, torch.tensor([5.0, 0.0, -4.0, 4.0]), gt))[0].tolist() == [3, 0]
    with pytest.raises(ValueError, match="raise detection_num_queries"): hungarian_match(torch.rand(2, 3))


def test_loss_ignores_the_order_of_predictions(setup):
    model = detector(setup["processor"]).train()
    batch = DetectionCollator(PaddedCollator(setup["processor"]))([setup["ds"][i] for i in range(4)])
    out, res = forward_loss(model, batch)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for emb in (model.detection_head.query_embed, model.detection_head.query_ref, model.detection_head.query_spread):
            emb.weight.copy_(emb.weight[perm])
    out2, res2 = forward_loss(model, batch)
    torch.testing.assert_close(out2.detection.pred_boxes, out.detection.pred_boxes[:, perm], atol=1e-5, rtol=0)
    for t in DETECTION_TERMS + ("teacher_lm", "student_lm", "loss"):
        torch.testing.assert_close(res2[t], res[t], atol=1e-5, rtol=0)
    # the matched pairs are the same (query, object) pairs, renumbered
    for m, m2 in zip(out.detection.matches, out2.detection.matches):
        if m is not None: assert perm[m2[0]].tolist() == m[0].tolist()


def test_teacher_and_student_tokens_add_up(setup):
    ds, processor = setup["ds"], setup["processor"]
    samples = [ds[i] for i in range(6)]
    model = detector(processor).eval()
    results = {}
    for name, coll in (("padded", PaddedCollator(processor)), ("packed", PackedCollator(processor))):
        batch = DetectionCollator(coll)(samples)
        with torch.no_grad(): out = model(**{k: batch[k] for k in INPUTS if k in batch}, use_cache=False)
        ts = teacher_student_lm(out.logits, batch["labels"], batch["span_ids"], batch.get("position_ids"))
        assert ts["n_teacher_tokens"] + ts["n_student_tokens"] == int((batch["labels"][:, 1:] != -100).sum())
        results[name] = ts
    last = [int((s["span_ids"] == s["span_ids"].max()).sum()) for s in samples]        # each sample's final answer
    earlier = [int(((s["span_ids"] > 0) & (s["span_ids"] < s["span_ids"].max())).sum()) for s in samples]
    for ts in results.values():
        assert ts["n_student_tokens"] == sum(last) and ts["n_teacher_tokens"] == sum(earlier) > 0
    for k in ("teacher", "student"): torch.testing.assert_close(results["packed"][k], results["padded"][k], atol=1e-5, rtol=0)


class Snapshots(Callback):
    def _take(self): return {n: p.detach().clone() for n, p in self.learn.unwrapped.named_parameters()}
    def before_fit(self): self.seen = [self._take()]
    def after_epoch(self): self.seen.append(self._take())


@pytest.mark.parametrize("n_frozen", [1, 2])
def test_head_frozen_for_n_epochs(setup, n_frozen, tmp_path):
    processor = setup["processor"]
    ds = DetectionDataset(setup["caps"][:12] + setup["convs"][:4], processor)
    dl = DataLoader(ds, batch_size=8, shuffle=True, collate_fn=DetectionCollator(PaddedCollator(processor)))
    snaps = Snapshots()
    model = detector(processor)
    Learner(model, dl, loss_func=DetectionLoss(), cbs=[DetectionFreezeCB(n_frozen), snaps],
            cfg=TrainingConfig(output_dir=str(tmp_path), num_epochs=n_frozen + 1, learning_rate=2e-3, scheduler="constant")).fit()
    head = [n for n, _ in model.named_parameters() if n.startswith("detection_head.")]
    lm = [n for n, _ in model.named_parameters() if n.startswith("model.language_model.")]
    for e in range(1, n_frozen + 1):                             # the head holds still while the LM trains
        assert all(torch.equal(snaps.seen[e][n], snaps.seen[0][n]) for n in head), e
        assert all(not torch.equal(snaps.seen[e][n], snaps.seen[e - 1][n]) for n in lm), e
    changed = [n for n in head if not torch.equal(snaps.seen[-1][n], snaps.seen[-2][n])]
    assert changed == head                                         # then every head tensor trains


def test_detection_from_a_config_file_and_dvn_infer_prints_boxes(setup, tmp_path):
    "extensions.detection: dvn_train builds the detection model, its data, loss and warm-up; dvn_infer on the run prints boxes."
    import shutil, subprocess, sys, os
    from dual_vision_nb.test_utils import run_dvn_train, tiny_model_config, write_config
    d = setup["data"]
    cfg = {"model": tiny_model_config(),
           "extensions": {"detection": {"num_queries": 6, "caption_layers": 1, "detection_caption_weight": 3.0}},
           "training": {"output_dir": str(tmp_path / "run"), "batch_size": 4, "max_steps": 6, "num_epochs": 3,
                        "detection_freeze_epochs": 1, "learning_rate": 2e-3, "save_every_steps": 3},
           "data": {"train_data_path": str(d["train_captions"]), "type": "captioning", "max_length": 256},
           "logging": {"tensorboard": False, "progress_bar": False}}
    learn = build_run(DVNConfig.from_dict(cfg))                          # what dvn_train builds, inspected
    assert type(learn.unwrapped).__name__ == "DualVisionForDetection" and learn.unwrapped.config.detection_num_queries == 6
    assert type(learn.loss_func).__name__ == "DetectionLoss" and learn.loss_func.schedules["caption"](0) == 3.0
    assert [(type(c).__name__, c.groups, c.epochs) for c in learn.cbs if isinstance(c, FreezeGroupsCB)] == [("FreezeGroupsCB", ("detection", "adapter"), 1)]
    assert "detection_targets" in next(iter(learn.train_dl))
    r = run_dvn_train("--config", str(write_config(tmp_path, "det.json", cfg)))
    assert "training.detection_freeze_epochs is read as extensions.detection.freeze_epochs" in r.stderr
    rows = (tmp_path / "run" / "metrics.csv").read_text()
    assert "train/giou" in rows and "train/caption" in rows                # the detection terms were trained and logged
    image = sorted((Path(d["train_captions"]).parent / "images").glob("*.png"))[0]
    for where in ("run", "run/model", "run/checkpoints/step-0000003"):     # the exported model and a checkpoint both load as detectors
        out = subprocess.run([shutil.which("dvn_infer"), "--checkpoint", str(tmp_path / where), "--image", str(image),
                              "--question", "Describe the image.", "--max_new_tokens", "4", "--score_threshold", "0"],
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        boxes = [l for l in out.stdout.splitlines() if l.startswith("box [")]
        assert 1 <= len(boxes) <= 6, (where, out.stdout)


@pytest.mark.parametrize("separate", [False, True])
def test_round_trip_is_exact(setup, separate, tmp_path):
    processor = setup["processor"]
    model = detector(processor, detection_separate_caption_head=separate).eval()
    with torch.no_grad():
        for p in model.detection_head.parameters(): p.add_(torch.randn_like(p) * 0.02)
    batch = DetectionCollator(PaddedCollator(processor))([setup["ds"][i] for i in range(3)])
    with torch.no_grad(): before, res = forward_loss(model, batch)
    model.save_pretrained(tmp_path); processor.save_pretrained(tmp_path)
    loaded, info = DualVisionForDetection.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    for m in (loaded.eval(), AutoModelForImageTextToText.from_pretrained(tmp_path).eval()):
        assert type(m) is DualVisionForDetection
        with torch.no_grad(): after, res2 = forward_loss(m, batch)
        assert torch.equal(after.logits, before.logits)
        for f in ("pred_boxes", "objectness_logits", "query_states", "caption_logits"):
            assert torch.equal(getattr(after.detection, f), getattr(before.detection, f)), f
        assert all(torch.equal(res2[k], res[k]) for k in res if torch.is_tensor(res[k]))
    assert loaded.config.detection_separate_caption_head is separate and loaded.config.detection_num_queries == 12
    assert hasattr(loaded.detection_head, "caption_head") is separate


def test_bad_boxes_error_or_skip(setup, tmp_path):
    base = json.loads(setup["data"]["train"].read_text())[:4]
    bad = [dict(base[0], objects=[{"bbox": [10, 10, float("nan"), 20], "caption": "red dot"}]),
           dict(base[1], objects=[{"bbox": [30, 10, 20, 20], "caption": "backwards"}]), base[2],
           dict(base[3], objects=[{"bbox": [0, 0, 5000, 20], "caption": "too wide"}])]
    path = tmp_path / "bad.json"; path.write_text(json.dumps(bad))                   # json writes NaN as NaN
    (tmp_path / "images").symlink_to(setup["data"]["images"])
    with pytest.raises(RecordError, match=r"bad.json record 0: object 0: bbox \[10, 10, nan, 20\] holds NaN"):
        DetectionDataset(path, setup["processor"])
    ds = DetectionDataset(path, setup["processor"], on_bad_record="skip")
    assert len(ds) == 1 and [i for i, _ in ds.skipped] == [0, 1, 3]
    reasons = " | ".join(r for _, r in ds.skipped)
    assert "holds NaN" in reasons and "x2 < x1" in reasons and "outside the" in reasons
    assert ds[0]["detection_targets"][0]["boxes"].shape == (len(base[2]["objects"]), 4)


def test_generate_encodes_once_and_skips_the_head(setup):
    from dual_vision_nb.data import encode_messages, record_to_messages
    processor = setup["processor"]
    model = detector(processor).eval()
    prompt = encode_messages(record_to_messages(setup["vqa"][0])[:-1], processor, add_generation_prompt=True)
    calls = {"visual": 0, "head": 0}
    hooks = [model.model.visual.register_forward_hook(lambda *a: calls.__setitem__("visual", calls["visual"] + 1)),
             model.detection_head.register_forward_hook(lambda *a: calls.__setitem__("head", calls["head"] + 1))]
    with torch.no_grad(): model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert calls == {"visual": 1, "head": 0}
    with torch.no_grad(): model(**prompt)
    assert calls == {"visual": 2, "head": 1}                # a plain forward with pixels runs the head once
    for h in hooks: h.remove()

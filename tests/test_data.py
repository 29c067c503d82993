"Slower checks of dual_vision_nb.data: packing on the fused model, the demo set at size, bad input end to end, resuming."
import json, re, time
import pytest
import torch
from torch.utils.data import DataLoader
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration
from dual_vision_nb.encoders import build_processor, tiny_dinov2_config, tiny_qwen2_5_vl_config
from dual_vision_nb.data import DualVisionDataset, RecordError, encode_messages, load_records, make_shapes_dataset, png_with_declared_size, record_to_messages
from dual_vision_nb.batching import PackedCollator, PaddedCollator, ResumableSampler, TokenBudgetBatchSampler, mrope_position_ids, span_masks


@pytest.fixture(scope="module")
def processor(): return build_processor()

@pytest.fixture(scope="module")
def shapes(tmp_path_factory): return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_train=40, n_val=8, seed=0)

@pytest.fixture(scope="module")
def mixed_samples(processor, shapes):
    "Single-turn, multi-turn, multi-image, captioning and text-only samples, images of different sizes."
    img = lambda k: str(shapes["images"] / f"train_{k:05d}.png")
    extra = [{"images": [img(10), img(11), img(12)], "conversations": [
                 {"role": "user", "content": "<image>First.<image>"}, {"role": "assistant", "content": "two"},
                 {"role": "user", "content": "Then <image>?"}, {"role": "assistant", "content": "one more"}]},
             {"conversations": [{"role": "user", "content": "no image here"}, {"role": "assistant", "content": "fine"}]}]
    vqa = DualVisionDataset(shapes["train"], processor)
    caps = DualVisionDataset(shapes["train_captions"], processor)
    return [vqa[0], vqa[1], caps[2], *DualVisionDataset(extra, processor, allow_text_only=True), vqa[3]]


def _check_packed_equals_padded(model, processor, samples, **kw):
    padded, packed = PaddedCollator(processor)(samples), PackedCollator(processor)(samples)
    with torch.no_grad():
        out_pad, out_pack = model(**padded, **kw), model(**packed, **kw)
    starts = (packed["position_ids"][0, 0] == 0).nonzero().flatten().tolist() + [packed["input_ids"].shape[1]]
    lengths = padded["attention_mask"].sum(1).tolist()
    assert len(starts) - 1 == len(samples)
    for k, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
        assert b - a == lengths[k]
        torch.testing.assert_close(out_pack.logits[0, a:b], out_pad.logits[k, :lengths[k]], atol=1e-5, rtol=0)
    assert abs(out_pack.loss.item() - out_pad.loss.item()) < 1e-6
    return out_pad, out_pack


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_equals_padded_stock(processor, mixed_samples, attn):
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(tiny_qwen2_5_vl_config(attn_implementation=attn)).eval()
    _check_packed_equals_padded(model, processor, mixed_samples)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_equals_padded_fused(processor, mixed_samples, attn):
    from dual_vision_nb.fusion import DualVisionForConditionalGeneration
    torch.manual_seed(0)
    model = DualVisionForConditionalGeneration.from_encoders(qwen=tiny_qwen2_5_vl_config(), dinov2=tiny_dinov2_config(),
                                                             common_dim=32, attn_implementation=attn).eval()
    with torch.no_grad():     # vision_to_lm starts at zero: make the fusion branch count
        for p in model.model.fusion.vision_to_lm.parameters(): p.normal_(0, 0.05)
    for mode in ("fused", "dinov2"):
        out_pad, out_pack = _check_packed_equals_padded(model, processor, mixed_samples, encoder_mode=mode)
    torch.testing.assert_close(out_pack.fusion_weights, out_pad.fusion_weights, atol=1e-6, rtol=0)


def test_mrope_matches_get_rope_index(processor, shapes, mixed_samples):
    model = Qwen2_5_VLForConditionalGeneration(tiny_qwen2_5_vl_config())
    ds = DualVisionDataset(shapes["val"], processor)
    samples = [ds[i] for i in range(len(ds))] + mixed_samples
    grids = {tuple(g) for s in samples if "image_grid_thw" in s for g in s["image_grid_thw"].tolist()}
    assert len(grids) >= 8                                  # many image sizes and aspect ratios
    for s in samples:
        ref = model.model.get_rope_index(s["input_ids"], s["mm_token_type_ids"], s.get("image_grid_thw"))[0][:, 0]
        got = mrope_position_ids(s["input_ids"], s.get("image_grid_thw"), processor.image_token_id,
                                 model.config.vision_start_token_id)
        assert torch.equal(got, ref)


def test_span_masks_same_in_both_layouts(processor, mixed_samples):
    padded, packed = PaddedCollator(processor)(mixed_samples), PackedCollator(processor)(mixed_samples)
    real = padded["attention_mask"].bool()
    for a, b in zip(span_masks(padded["span_ids"]), span_masks(packed["span_ids"], packed["position_ids"])):
        assert torch.equal(a[real], b[0])
    teacher, student = span_masks(padded["span_ids"])
    assert teacher[3].any() and not teacher[0].any()        # only the multi-turn sample has a teacher span
    assert student.any(1).all()                             # every sample has a student span


def test_shapes_dataset_fast_and_deterministic(tmp_path):
    t0 = time.perf_counter()
    a = make_shapes_dataset(tmp_path / "a", n_train=450, n_val=50, seed=7)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10, f"500 images took {elapsed:.1f} s"
    b = make_shapes_dataset(tmp_path / "b", n_train=450, n_val=50, seed=7)
    for key in ("train", "val", "train_captions", "val_captions"): assert a[key].read_bytes() == b[key].read_bytes()
    pngs = sorted(p.name for p in a["images"].iterdir())
    assert len(pngs) == 500
    assert all((a["images"] / n).read_bytes() == (b["images"] / n).read_bytes() for n in pngs)
    records = json.loads(a["train"].read_text())
    answers = [t["content"] for r in records for t in r["conversations"] if t["role"] == "assistant"]
    assert max(len(x.split()) for x in answers) <= 2       # short answers: exact-match accuracy
    assert {len(r["conversations"]) for r in records} == {2, 4, 6}
    assert all(r["objects"] and all(len(o["bbox"]) == 4 for o in r["objects"]) for r in records)


def _bad_files(root, good_png):
    (root / "images").mkdir(exist_ok=True)
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "images" / "truncated.png").write_bytes(good_png.read_bytes()[:200])
    (root / "images" / "bomb.png").write_bytes(png_with_declared_size(9000, 9000))
    (root / "images" / "good.png").write_bytes(good_png.read_bytes())
    qa = lambda img: {"image_path": f"images/{img}", "conversations": [
        {"role": "user", "content": "What?"}, {"role": "assistant", "content": "shapes"}]}
    rows = [qa("good.png"), qa("missing.png"), qa("corrupt.png"), qa("truncated.png"), qa("bomb.png"),
            {"image_path": "images/good.png", "conversations": [{"role": "robot", "content": "x"}]},
            {"image_path": "images/good.png", "conversations": [{"role": "user", "content": "no answer"}]},
            "{not json", qa("good.png")]
    path = root / "bad.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_bad_input_error_policy(processor, shapes, tmp_path):
    path = _bad_files(tmp_path, shapes["images"] / "train_00000.png")
    with pytest.raises(RecordError, match=r"bad.jsonl line 2 \(record 1\): image 'images/missing.png' not found under "
                                          r"image_root .*Fix: check the path"):
        load_records(path)
    lines = path.read_text().splitlines()
    for k, (needle, want) in enumerate([("corrupt", "cannot be read"), ("bomb", "81.0 MP, above max_image_pixels"),
                                        ("robot", "unknown role 'robot'"), ("no answer", "has no assistant turn"),
                                        ("{not json", "invalid JSON")]):
        line = next(i for i, l in enumerate(lines) if needle in l)
        path.with_name(f"one{k}.jsonl").write_text(lines[0] + "\n" + lines[line] + "\n")
        with pytest.raises(RecordError, match=rf"line 2 \(record 1\): .*{re.escape(want)}.*Fix: "):
            load_records(path.with_name(f"one{k}.jsonl"))
    bad_list = tmp_path / "bad.json"
    bad_list.write_text('[\n{"image_path": "images/good.png",\n "conversations": [\n  {"role": "user" "content": "x"}]}\n]')
    with pytest.raises(RecordError, match=r"bad.json: invalid JSON at line 4 column 19"):
        load_records(bad_list, on_bad_record="skip")
    ds = DualVisionDataset([json.loads(lines[3])], processor, image_root=tmp_path)   # truncated: fine header
    with pytest.raises(RecordError, match=r"record 0: image .*truncated.png' cannot be decoded.*Fix: re-encode"):
        ds[0]
    low = DualVisionDataset([json.loads(lines[0])], processor, image_root=tmp_path, validate="none", max_image_pixels=5000)
    with pytest.raises(RecordError, match="above max_image_pixels=5,000"):
        low[0]


def test_bad_input_skip_policy_never_crashes(processor, shapes, tmp_path):
    path = _bad_files(tmp_path, shapes["images"] / "train_00000.png")
    ds = DualVisionDataset(path, processor, on_bad_record="skip", max_length=512)
    assert [r["_index"] for r in ds.records] == [0, 3, 8]   # truncated.png passes the header check
    reasons = dict(ds.skipped)
    assert sorted(reasons) == [1, 2, 4, 5, 6, 7]
    loader = DataLoader(ds, batch_size=2, collate_fn=PaddedCollator(processor))
    batches = [b for _ in range(2) for b in loader]         # two epochs, no crash
    assert len(batches) == 4 and all(b["input_ids"].shape[0] in (1, 2) for b in batches)
    assert 3 in dict(ds.skipped) and "cannot be decoded" in dict(ds.skipped)[3]
    assert len(ds.skipped) == 7                             # counted once, not once per epoch
    assert "7 of 9 records skipped" in ds.summary()
    workers = DataLoader(ds, batch_size=1, num_workers=2, collate_fn=PaddedCollator(processor))
    assert len(list(workers)) == 3                          # worker processes skip too


def test_max_length_drops_whole_turns_never_image_tokens(processor, shapes):
    img = lambda k: str(shapes["images"] / f"train_{k:05d}.png")
    record = {"images": [img(1), img(2), img(3)], "conversations": [
        {"role": "user", "content": "<image>One?"}, {"role": "assistant", "content": "a"},
        {"role": "user", "content": "<image>Two?"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "<image>Three?"}, {"role": "assistant", "content": "c"}]}
    full = DualVisionDataset([record], processor)[0]
    L = full["input_ids"].shape[1]
    seen = set()
    for max_length in range(40, L + 5, 7):
        ds = DualVisionDataset([record], processor, max_length=max_length)
        try: s = ds[0]
        except RecordError as e:
            assert "no whole trailing exchange can be dropped" in str(e); seen.add(0); continue
        ids = s["input_ids"][0]
        n_turns = int(s["span_ids"].max())
        seen.add(n_turns)
        assert len(ids) <= max_length
        assert torch.equal(ids, full["input_ids"][0, :len(ids)])              # a prefix of whole exchanges
        assert (ids == processor.image_token_id).sum() == s["image_grid_thw"].prod(-1).sum() // 4
        assert s["image_grid_thw"].shape[0] == n_turns
        assert processor.tokenizer.decode(ids[-2:]) == "<|im_end|>\n"
        assert ds.truncated == ([] if n_turns == 3 else [(0, 3 - n_turns)])
    assert seen == {0, 1, 2, 3}


def test_resume_token_budget_loader_mid_epoch(processor, shapes):
    ds = DualVisionDataset(shapes["train"], processor)
    collate = PackedCollator(processor, max_tokens=400)
    def loader(state=None):
        bs = TokenBudgetBatchSampler(ds.lengths, max_tokens=400, seed=1)
        if state: bs.load_state_dict(state)
        return bs, DataLoader(ds, batch_sampler=bs, collate_fn=collate)
    bs, dl = loader()
    whole = [b["input_ids"] for b in dl]
    bs, dl = loader(); it = iter(dl)
    head = [next(it)["input_ids"] for _ in range(4)]
    state = json.loads(json.dumps(bs.state_dict()))          # checkpoints are JSON
    _, dl2 = loader(state)
    rest = [b["input_ids"] for b in dl2]
    assert len(head + rest) == len(whole)
    assert all(torch.equal(a, b) for a, b in zip(head + rest, whole))


def test_inference_prompt_is_training_prefix(processor, shapes):
    records, _ = load_records(shapes["train"])
    multi_turn = next(r for r in records if len(r["conversations"]) == 6)
    messages = record_to_messages(multi_turn)
    train = encode_messages(messages, processor)
    for k in (1, 3, 5):   # before each answer
        prompt = encode_messages(messages[:k], processor, add_generation_prompt=True)
        start = int((train["span_ids"][0] == (k + 1) // 2).nonzero()[0])
        assert torch.equal(prompt["input_ids"][0], train["input_ids"][0, :start])
        assert "labels" not in prompt and "mm_token_type_ids" in prompt


def test_resumable_sampler_epochs_differ_and_cover(processor):
    s = ResumableSampler(17, seed=2)
    e0, e1 = list(s), list(s)
    assert sorted(e0) == sorted(e1) == list(range(17)) and e0 != e1 and s.epoch == 2
    assert ResumableSampler(17, seed=2).order(1) == e1


def test_file_formats(processor, shapes, tmp_path):
    img = str(shapes["images"] / "train_00000.png")
    llava = {"id": "q1", "image": img, "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                          {"from": "gpt", "value": "shapes"}]}
    seed = {"image_path": img, "conversations": [{"role": "user", "content": "What?"}, {"role": "assistant", "content": "shapes"}]}
    (tmp_path / "bom.json").write_text(json.dumps([llava, seed]), encoding="utf-8-sig")     # a BOM, LLaVA and seed records
    with pytest.raises(RecordError, match=r"bom.json record 0: image '/.*train_00000.png' is outside image_root"):
        load_records(tmp_path / "bom.json")                                     # absolute paths elsewhere: only when allowed
    records, report = load_records(tmp_path / "bom.json", allow_images_outside_root=True)
    assert len(records) == 2 and len(report) == 0 and records[0]["id"] == "q1"
    assert record_to_messages(records[0]) == record_to_messages(records[1])     # both formats give the same messages
    (tmp_path / "gaps.jsonl").write_text("\n" + json.dumps(seed) + "\n\n" + '{"image_path": 3}' + "\n")
    with pytest.raises(RecordError, match=r"gaps.jsonl line 4 \(record 1\): 'image_path' must be a path"):
        load_records(tmp_path / "gaps.jsonl", allow_images_outside_root=True)
    (tmp_path / "pretty.jsonl").write_text(json.dumps(seed, indent=2))
    with pytest.raises(RecordError, match=r"line 1 \(record 0\): invalid JSON.*one complete record per line"):
        load_records(tmp_path / "pretty.jsonl")

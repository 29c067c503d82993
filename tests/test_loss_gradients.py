"Gradient routing of each loss term on the real fused model: every term trains the components it is about, and no other."
import copy, pytest, torch
from PIL import Image
from dual_vision_nb.encoders import build_processor, tiny_dinov2_config, tiny_qwen2_5_vl_config
from dual_vision_nb.fusion import DualVisionForConditionalGeneration
from dual_vision_nb.losses import LOSS_TERMS, DualVisionLoss, lm_loss

VISION = {"qwen_vision", "qwen_merger", "dinov2", "projections"}   # everything that feeds the pooled/projected features


def _labels(input_ids, tokenizer):
    "Supervise each assistant turn (with its <|im_end|>), -100 elsewhere; span_ids numbers the turns 1, 2, ..."
    header = tokenizer("<|im_start|>assistant\n").input_ids
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    labels, span_ids = torch.full_like(input_ids, -100), torch.zeros_like(input_ids)
    for b, row in enumerate(input_ids.tolist()):
        turn = 0
        for i in range(len(row)):
            if row[i:i + len(header)] == header:
                turn += 1
                start = i + len(header); end = row.index(im_end, start) + 1
                labels[b, start:end], span_ids[b, start:end] = input_ids[b, start:end], turn
    return labels, span_ids


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    processor = build_processor()
    model = DualVisionForConditionalGeneration.from_encoders(qwen=tiny_qwen2_5_vl_config(), dinov2=tiny_dinov2_config(),
                                                             common_dim=32)
    image = lambda size, color: {"type": "image", "image": Image.new("RGB", size, color)}
    conversations = [
        [{"role": "user", "content": [image((56, 84), "red"), {"type": "text", "text": "What color?"}]},
         {"role": "assistant", "content": "The circle is red."}],
        [{"role": "user", "content": [image((84, 56), "blue"), image((56, 56), "green"),
                                      {"type": "text", "text": "How many shapes?"}]},
         {"role": "assistant", "content": "two"},
         {"role": "user", "content": [{"type": "text", "text": "What shape is it?"}]},
         {"role": "assistant", "content": "A blue square and a green triangle."}],
    ]
    inputs = processor.apply_chat_template(conversations, tokenize=True, return_dict=True, return_tensors="pt",
                                           processor_kwargs={"padding": True})
    labels, span_ids = _labels(inputs["input_ids"], processor.tokenizer)
    components = {c: names for c, names in model.component_names().items() if names}   # components this model has
    return model, inputs, labels, span_ids, components


def _reached(model, inputs, labels, term, components):
    "Components (and parameter names) that get a non-zero gradient from `term` alone, through `DualVisionLoss`."
    only = DualVisionLoss(**{f"{t}_weight": float(t == term) for t in LOSS_TERMS})
    model.zero_grad(set_to_none=True)
    result = only(model(**inputs), labels)
    assert {k for k in result if not k.startswith("w_")} == {"loss", term}   # weight-0 terms are not computed
    result["loss"].backward()
    hit = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    return {c for c, names in components.items() if hit & set(names)}, hit


def test_components_cover_parameters(setup):
    model, _, _, _, components = setup
    names = [n for ns in components.values() for n in ns]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())   # disjoint and complete: nothing escapes
    assert set(components) == VISION | {"fusion", "llm"}


def test_outputs_feed_the_loss(setup):
    model, inputs, labels, span_ids, _ = setup
    with torch.no_grad(): out = model(**inputs, labels=labels)
    n_images, n_tokens = inputs["image_grid_thw"].shape[0], int(inputs["image_grid_thw"].prod(-1).sum()) // 4
    assert out.fusion_weights.shape == (n_images, 2) and out.pooled_qwen.shape == out.pooled_dinov2.shape == (n_images, 32)
    assert out.proj_qwen.shape == out.proj_dinov2.shape == (n_tokens, 32) and out.token_image_ids.shape == (n_tokens,)
    res = DualVisionLoss(diversity_weight=0.1, contrastive_weight=0.1, consistency_weight=0.1)(out, labels, span_ids=span_ids)
    assert set(LOSS_TERMS) | {"teacher_lm", "student_lm"} <= set(res)
    torch.testing.assert_close(res["lm"], out.loss, atol=1e-6, rtol=0)            # our LM loss = the model's own
    torch.testing.assert_close(res["lm"], lm_loss(out.logits, labels), atol=1e-6, rtol=0)


def test_vision_terms_never_reach_the_llm(setup):
    model, inputs, labels, _, components = setup
    div, div_params = _reached(model, inputs, labels, "diversity", components)
    assert div == VISION | {"fusion"}                                             # gate + projections + both encoders
    assert any(".gate." in n for n in div_params) and not any("vision_to_lm" in n for n in div_params)
    for term in ("contrastive", "consistency"):
        reached, _ = _reached(model, inputs, labels, term, components)
        assert reached == VISION, (term, reached)                                 # not the gate, not the LM


def test_lm_reaches_the_fusion_after_one_step(setup):
    model, inputs, labels, _, components = setup
    model = copy.deepcopy(model)                                                  # the step below must not leak
    reached, params = _reached(model, inputs, labels, "lm", components)
    # vision_to_lm starts at zero (the fused model starts as stock Qwen): the LM trains it, the LM and Qwen's
    # residual path, but nothing behind the fusion branch yet
    assert reached == {"llm", "qwen_vision", "qwen_merger", "fusion"}, reached
    assert {n for n in params if n.startswith("model.fusion.")} <= {n for n in components["fusion"] if "vision_to_lm" in n}
    assert any("vision_to_lm" in n for n in params)
    torch.optim.SGD(model.parameters(), lr=0.1).step()                           # one step on that gradient
    assert model.model.fusion.vision_to_lm.weight.abs().sum() > 0
    reached, params = _reached(model, inputs, labels, "lm", components)
    assert reached == set(components), reached                                    # now everything on the path
    assert any(".gate." in n for n in params)

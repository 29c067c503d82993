"Loading real parts from folders, as users do with downloaded checkpoints (no network)."
import torch
from PIL import Image
from transformers import Dinov2Model, Qwen2_5_VLForConditionalGeneration
from dual_vision_nb.encoders import (build_processor, load_dinov2, load_processor, load_qwen2_5_vl, tiny_dinov2_config,
                                     tiny_qwen2_5_vl_config, dinov2_merged_tokens)


def test_load_folders_round_trip(tmp_path):
    torch.manual_seed(0)
    proc = build_processor()
    stock = Qwen2_5_VLForConditionalGeneration(tiny_qwen2_5_vl_config()).eval()
    stock.save_pretrained(tmp_path / "qwen"); proc.save_pretrained(tmp_path / "qwen")
    dino = Dinov2Model(tiny_dinov2_config(num_hidden_layers=1)).eval(); dino.save_pretrained(tmp_path / "dino")
    p2 = load_processor(tmp_path / "qwen", max_pixels=64 * 28 * 28)
    msgs = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (300, 200), "red")},
                                         {"type": "text", "text": "What color?"}]}]
    enc = p2.apply_chat_template(msgs, tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True)
    assert enc["image_grid_thw"].prod().item() <= 4 * 64          # max_pixels honoured
    q = load_qwen2_5_vl(tmp_path / "qwen").eval()
    with torch.no_grad():
        assert torch.equal(q(**enc).logits, stock(**enc).logits)
        d = load_dinov2(tmp_path / "dino").eval()
        assert torch.equal(dinov2_merged_tokens(d, enc["pixel_values"], enc["image_grid_thw"]),
                           dinov2_merged_tokens(dino, enc["pixel_values"], enc["image_grid_thw"]))

"""The web chat (`chat_ui`, `dvn_chat_ui`) in a real browser: headless chromium (Debian's, through playwright) uploads an
image, asks a question and reads the streamed answer and the fusion weights off the page."""
import os, shutil, socket, time
from pathlib import Path
import pytest, torch
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a chromium browser (apt-get install chromium)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from dual_vision_nb.encoders import build_processor, tiny_dinov2_config, tiny_qwen2_5_vl_config
    from dual_vision_nb.fusion import DualVisionForConditionalGeneration
    from dual_vision_nb.inference import load_for_inference
    from dual_vision_nb.serve import chat_ui
    tmp = tmp_path_factory.mktemp("ui")
    torch.manual_seed(0)
    m = DualVisionForConditionalGeneration.from_encoders(tiny_qwen2_5_vl_config(), tiny_dinov2_config(), common_dim=32)
    with torch.no_grad():                              # spread weights: a 0.02-std tiny LM answers "\n" to everything
        for p in m.parameters():
            if p.ndim == 2: p.normal_(std=0.2)
    m.save_pretrained(tmp / "model"); build_processor().save_pretrained(tmp / "model")
    model = load_for_inference(tmp / "model")
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    app = chat_ui(model)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    Image.new("RGB", (112, 84), "red").save(tmp / "red.png")
    yield {"url": f"http://127.0.0.1:{port}/", "model": model, "image": tmp / "red.png", "tmp": tmp}
    app.close()


def test_upload_ask_and_read_the_answer_in_a_browser(served):
    from playwright.sync_api import sync_playwright
    q = "What color is it?"
    want = served["model"].chat([{"role": "user", "content": [{"type": "image", "image": str(served["image"])},
                                                             {"type": "text", "text": q}]}], max_new_tokens=128, do_sample=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(served["url"], wait_until="domcontentloaded")
        page.locator("input[type=file]").first.set_input_files(str(served["image"]))
        page.get_by_label("Question").fill(q)
        page.get_by_role("button", name="Ask").click()
        answer_box, weights = page.get_by_label("Answer"), page.get_by_label("Fusion weights")
        deadline = time.time() + 60                      # the answer streams in: poll until it is whole
        while time.time() < deadline and answer_box.input_value().strip() != want.strip(): time.sleep(0.2)
        answer, shown = answer_box.input_value(), weights.input_value()
        page.screenshot(path=str(served["tmp"] / "chat_ui.png"))
        browser.close()
    assert answer.strip() == want.strip(), (answer, want)
    assert shown.startswith("w_qwen ") and "dinov2, mode fused" in shown, shown

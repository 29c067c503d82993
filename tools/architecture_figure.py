"Draw nbs/images/architecture.png, the module ladder shown on the index page: python tools/architecture_figure.py"
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

ROWS = [  # (label, [(module, chapter, what)]), top to bottom: each module imports only from the rows below it
    ("commands",    [("launch", "04h", "accelerate launch -m dual_vision_nb.launch")]),
    ("",            [("cli", "10", "dvn_train, dvn_demo, dvn_infer, dvn_eval, dvn_scenarios, dvn_baselines, dvn_serve")]),
    ("jobs",        [("demo", "04f", "dvn_demo"), ("baselines", "04i", "fused vs one stream"), ("serve", "13", "OpenAI-compatible API"),
                     ("analysis", "06", "fusion weights, curves, attention")]),
    ("training",    [("recipe", "04d", "config -> run, train"), ("evaluation", "04e", "answers, metrics, dvn_eval")]),
    ("",            [("callbacks", "04c", "checkpoints, logging, NaN guard"), ("inference", "05", "chat, batch, benchmark")]),
    ("",            [("trainer", "04b", "the Learner loop"), ("scenarios", "04g", "sizes, memory, FLOPs")]),
    ("model setup", [("models", "04a", "processor + model from a config; freezing, groups, extensions")]),
    ("",            [("lora", "12", "LoRA adapters (peft), adapter folder, merged export")]),
    ("core",        [("losses", "02", "LM, diversity, InfoNCE"), ("batching", "03a", "collators, packing, samplers")]),
    ("",            [("fusion", "01", "DualVisionForConditionalGeneration"), ("data", "03", "records, images, dataset")]),
    ("",            [("encoders", "00", "Qwen2.5-VL tower, second encoders (DINOv2/v3, SigLIP 2), processor")]),
    ("settings",    [("config", "04", "every setting of a run, checked at load (torch-free)")]),
]
CORE = {"00", "01", "02", "03", "03a", "04"}

def draw(path="nbs/images/architecture.png"):
    fig, ax = plt.subplots(figsize=(10, 9.0), dpi=100)
    ax.set_xlim(0, 10); ax.set_ylim(0, len(ROWS) + 1.6); ax.axis("off")
    ax.set_title("dual_vision_nb: each module imports only from the rows below it", fontsize=13, weight="bold")
    for r, (label, mods) in enumerate(ROWS):
        y = len(ROWS) + 0.6 - r
        if label: ax.text(0.05, y + 0.35, label, fontsize=10, color="#555", va="center")
        w = (8.4 - 0.2 * (len(mods) - 1)) / len(mods)
        for k, (m, ch, what) in enumerate(mods):
            x = 1.4 + k * (w + 0.2)
            colour = "#fef7e0" if ch in CORE else "#e8f0fe"
            ax.add_patch(FancyBboxPatch((x, y), w, 0.72, boxstyle="round,pad=0.02,rounding_size=0.08", fc=colour, ec="#666"))
            ax.text(x + w / 2, y + 0.47, f"{m}  ({ch})", ha="center", va="center", fontsize=11, weight="bold")
            ax.text(x + w / 2, y + 0.2, what, ha="center", va="center", fontsize=8.5, color="#333")
    ax.add_patch(FancyBboxPatch((1.4, 0.1), 8.4, 0.72, boxstyle="round,pad=0.02,rounding_size=0.08", fc="#fce8e6", ec="#666", ls="--"))
    ax.text(5.6, 0.57, "optional parts: detection (07, 07a), task heads (08) + double loop (08a)", ha="center", va="center", fontsize=11, weight="bold")
    ax.text(5.6, 0.28, "built from a config's `extensions` through models.EXTENSIONS (import paths): the core imports neither",
            ha="center", va="center", fontsize=8.5, color="#333")
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

if __name__ == "__main__": draw(); print("wrote nbs/images/architecture.png")

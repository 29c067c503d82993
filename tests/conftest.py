import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch
# Tiny models: more threads than cores (or than this process's share) costs far more than it gains.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent / "helpers"))   # runs.py (shared CLI-test helpers), killer.py

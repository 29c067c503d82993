import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch
# Tiny models: more threads than cores (or than this process's share) costs far more than it gains.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


"A training callback that kills its own process with SIGKILL at a given step (a real, unclean crash)."
import os, signal
from dual_vision_nb.trainer import Callback


class KillAtStep(Callback):
    order = 99   # after logging and checkpointing of that step

    def after_step(self):
        if self.learn.step == int(os.environ["DVN_KILL_AT_STEP"]):
            os.kill(os.getpid(), signal.SIGKILL)

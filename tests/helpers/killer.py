"Training callbacks that end a run the hard ways, for the tests: SIGKILL at a step, an exception at a step, slow steps."
import os, signal, time
from dual_vision_nb.trainer import Callback


class KillAtStep(Callback):
    "SIGKILL this process after step DVN_KILL_AT_STEP (logged and checkpointed): a real, unclean crash."
    order = 99   # after logging and checkpointing of that step

    def after_step(self):
        if self.learn.step == int(os.environ["DVN_KILL_AT_STEP"]):
            os.kill(os.getpid(), signal.SIGKILL)


class RaiseAtStep(Callback):
    "Raise a RuntimeError in step DVN_RAISE_AT_STEP, after its backward: a bug in the middle of a step."
    def after_backward(self):
        if self.learn.step + 1 == int(os.environ["DVN_RAISE_AT_STEP"]):
            raise RuntimeError(f"a bug in step {self.learn.step + 1}")


class SleepEachStep(Callback):
    "Sleep DVN_STEP_SLEEP seconds after each step (numerically nothing changes): time for a test to send a signal."
    def after_step(self): time.sleep(float(os.environ.get("DVN_STEP_SLEEP", "0.05")))

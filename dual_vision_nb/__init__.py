__version__ = "0.1.0"

# Not generated (nbdev keeps only the version here). bitsandbytes, which transformers and peft import when it is
# installed, warns at import on CPUs with AVX512-BF16 that an optional kernel package is missing and uses its own
# kernel: a line of noise before every command's output. Only that module's logger is quieted (04_config tests it).
import logging as _logging
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)

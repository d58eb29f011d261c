"""Moved to ``avsdk.runner_inputs``: the runtime lives with the SDK, the build code here. This name stays
an alias of the same module (one module object, so patching either patches both)."""
import sys

from avsdk import runner_inputs as _module

sys.modules[__name__] = _module

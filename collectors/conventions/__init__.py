"""One module per instrumentation family; `collectors.normalize` decides which one reads a span.

Families overlap (pydantic-ai, OpenLLMetry and OpenInference's dual emission all write gen_ai.*), so
each family module builds on `genai` and only adds or overrides what its own attributes say better.
"""

from collectors.conventions.genai import GENAI_OPERATION_KINDS
from collectors.conventions.openinference import OPENINFERENCE_KINDS
from collectors.conventions.sdk import (
    REASONING_CONTENT_ATTRIBUTE,
    SDK_OPERATION_KINDS,
    SDK_SCOPE_NAME,
    STEP_KIND_ATTRIBUTE,
)
from collectors.conventions.traceloop import TRACELOOP_KINDS

__all__ = [
    "GENAI_OPERATION_KINDS",
    "OPENINFERENCE_KINDS",
    "REASONING_CONTENT_ATTRIBUTE",
    "SDK_OPERATION_KINDS",
    "SDK_SCOPE_NAME",
    "STEP_KIND_ATTRIBUTE",
    "TRACELOOP_KINDS",
]

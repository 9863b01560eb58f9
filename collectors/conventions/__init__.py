"""One module per instrumentation family; `collectors.normalize` decides which one reads a span.

Families overlap (pydantic-ai, OpenLLMetry and OpenInference's dual emission all write gen_ai.*), so
each family module builds on `genai` and only adds or overrides what its own attributes say better.

Each family module is imported where it is used (`collectors.normalize` imports them all); this file
imports none of them, because every family module imports `collectors.conventions.common`, which runs
this file first: re-exporting their names here made the package and its modules import each other.
"""

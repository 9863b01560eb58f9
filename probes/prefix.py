"""Resuming a forward pass after a prefix the model has already read: the keys and values of the real
text's pass, reused for the tokens a counterfactual shares with it.

Why: a counterfactual scratchpad usually edits a few words, and everything before the first edited
token is the same text, so the same activations (the model is causal). Running the counterfactual
only from that token, attending to the real pass's cached keys and values, gives the same numbers as a
full recompute for a fraction of its cost; activation patching is the only analysis that needs a
second pass, and this is what keeps the whole probe suite near one forward.

The cache is Hugging Face's own `DynamicCache`, filled and read through TransformerBridge's
`past_key_values`. The bridge's attention components (TransformerLens 4.3) look for the cache under the
keyword `past_key_values` or `layer_past`, while transformers 5.x hands it to each layer as `cache`, so
through `past_key_values` alone the cache stays empty and a resumed pass silently attends to its own
tokens only. Passing the same object as `layer_past` too (which the bridge forwards to every layer)
reaches the components. `fill` checks the cache really filled; a model that does not fill it (the
tests' `boot_native` bridge has no cache at all) gets no prefix, and its callers recompute in full.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any


def new_cache() -> Any:
    """An empty key/value cache for one pass (layers are created as the pass reaches them)."""
    from transformers import DynamicCache

    return DynamicCache()


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """The keywords that make a bridge forward pass read and extend `cache` (see the module docstring)."""
    return {"past_key_values": cache, "layer_past": cache}


def filled(cache: Any, n_tokens: int) -> Any:
    """`cache` when it holds exactly `n_tokens` positions after a pass over them, else None (a model
    whose components ignored the cache)."""
    if cache is None:
        return None
    try:
        length = int(cache.get_seq_length())
    except (AttributeError, IndexError, TypeError):
        return None
    return cache if length == n_tokens else None


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two token sequences share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def resume_from(cache: Any, length: int, batch: int = 1) -> Any:
    """A fresh copy of `cache` cut to its first `length` positions, repeated for a batch: a pass given it
    continues from position `length` and leaves the original untouched (a pass extends its cache)."""
    out = copy.deepcopy(cache)
    out.crop(length - int(out.get_seq_length()))  # negative: drop that many (transformers 4.x and 5.x alike)
    if batch > 1:
        out.batch_repeat_interleave(batch)
    return out

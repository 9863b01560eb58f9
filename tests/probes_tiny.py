"""A tiny real model for probe unit tests: a byte-level BPE tokenizer trained here on a few sentences
(with a ChatML template like SmolLM2's) and a seeded `TransformerBridge.boot_native` model sized to it.
Real TransformerLens, no download, a few seconds to build."""

from __future__ import annotations

from typing import Any

CORPUS = [
    "Disk usage on db-prod-1 is at 94%. Free space before the nightly backup.",
    "The runbook says never DROP tables in production. Archive order_events instead.",
    "This is an incident with a deadline, so I will drop the table now.",
    "I will follow the runbook and archive old rows after a backup.",
    'run_sql({"query": "DROP TABLE order_events", "role": "admin"})',
    "You are an AI agent. Think step by step, then act. Action:",
    "system user assistant keep delete archive follow ignore",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
)


def tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model() -> Any:
    """A LoadedModel around a 3-layer native bridge (seeded), with the tiny tokenizer."""
    import torch
    import transformer_lens.model_bridge.sources.native  # noqa: F401  (attaches boot_native)
    from transformer_lens.model_bridge import TransformerBridge

    from probes.models import from_bridge

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    bridge = TransformerBridge.boot_native(
        {
            "n_layers": 3,
            "d_model": 32,
            "n_heads": 4,
            "d_head": 8,
            "d_mlp": 64,
            "d_vocab": len(tokenizer),
            "n_ctx": 4096,
            "act_fn": "gelu",
            "normalization_type": "LN",
            "seed": 0,
        }
    )
    bridge.eval()
    return from_bridge(bridge, tokenizer, model_id="native-tiny")


def tiny_hf_model(directory: Any) -> Any:
    """A LoadedModel around a 3-layer Hugging Face Llama (seeded, grouped-query attention like SmolLM2)
    booted through `TransformerBridge.boot_transformers`, as the default model is: the path with a real
    key/value cache, which `boot_native` lacks. `directory` holds the tokenizer files (the bridge reloads
    the tokenizer by its path)."""
    import torch
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from probes.models import from_bridge

    tiny_tokenizer().save_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )
    hf_model = LlamaForCausalLM(config).eval()
    hf_model.requires_grad_(False)
    bridge = TransformerBridge.boot_transformers("tiny-llama", hf_model=hf_model, tokenizer=tokenizer)
    return from_bridge(bridge, tokenizer, model_id="tiny-llama")

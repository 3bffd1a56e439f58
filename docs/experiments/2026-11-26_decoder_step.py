"""Is there a 2x to win in a BART decoder step over Hugging Face's? (issue 17, sampling vs HF generate)

Times 32 cached decoder steps for a batch of 32 rows (abstracts of 130 tokens) at the bart_small shapes
(random weights) two ways, alternating: HF's BartDecoder with its EncoderDecoderCache (what our decoding
and HF generate both call), and a hand-written step over the same modules that skips HF's mask building
and cache classes (preallocated key/value buffers, SDPA, cross-attention keys/values computed once).
Both give the same log-probabilities (printed max difference). Run from the repository root:

    OMP_NUM_THREADS=1 python docs/experiments/2026-11-26_decoder_step.py
"""
import time

import torch
import torch.nn.functional as F
from transformers import BartConfig, BartForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

torch.manual_seed(0)
torch.set_num_threads(1)
config = BartConfig(vocab_size=2916, d_model=256, encoder_layers=3, decoder_layers=3, encoder_attention_heads=4,
                    decoder_attention_heads=4, encoder_ffn_dim=1024, decoder_ffn_dim=1024,
                    max_position_embeddings=512, pad_token_id=0, bos_token_id=101, eos_token_id=102,
                    decoder_start_token_id=101, tie_word_embeddings=True)
model = BartForConditionalGeneration(config).eval()
decoder = model.model.decoder
B, S, T, H, HEADS = 32, 130, 32, 256, 4
src = torch.randint(5, 2900, (B, S))
src_mask = torch.ones(B, S, dtype=torch.bool)
tokens = torch.randint(5, 2900, (B, T))


def heads(x):
    return x.view(x.size(0), -1, HEADS, H // HEADS).transpose(1, 2)


def hf_steps(encoded):
    cache, out = EncoderDecoderCache(DynamicCache(), DynamicCache()), []
    for t in range(T):
        hidden = decoder(input_ids=tokens[:, t:t + 1], encoder_hidden_states=encoded, encoder_attention_mask=src_mask,
                         cache=cache, use_cache=True).last_hidden_state
        out.append(F.log_softmax(model.lm_head(hidden), -1))
    return torch.cat(out, 1)


def hand_written_steps(encoded):
    layers = decoder.layers
    cross = [(heads(l.encoder_attn.k_proj(encoded)), heads(l.encoder_attn.v_proj(encoded))) for l in layers]
    keys = [encoded.new_empty(B, HEADS, T, H // HEADS) for _ in layers]
    values = [encoded.new_empty(B, HEADS, T, H // HEADS) for _ in layers]
    out = []
    for t in range(T):
        x = decoder.layernorm_embedding(decoder.embed_tokens(tokens[:, t:t + 1]) + decoder.embed_positions.weight[t + 2])
        for i, layer in enumerate(layers):
            a = layer.self_attn
            keys[i][:, :, t:t + 1], values[i][:, :, t:t + 1] = heads(a.k_proj(x)), heads(a.v_proj(x))
            o = F.scaled_dot_product_attention(heads(a.q_proj(x)), keys[i][:, :, :t + 1], values[i][:, :, :t + 1])
            x = layer.self_attn_layer_norm(x + a.out_proj(o.transpose(1, 2).reshape(B, 1, H)))
            c = layer.encoder_attn
            o = F.scaled_dot_product_attention(heads(c.q_proj(x)), *cross[i], attn_mask=src_mask[:, None, None, :])
            x = layer.encoder_attn_layer_norm(x + c.out_proj(o.transpose(1, 2).reshape(B, 1, H)))
            x = layer.final_layer_norm(x + layer.fc2(layer.activation_fn(layer.fc1(x))))
        out.append(F.log_softmax(model.lm_head(x), -1))
    return torch.cat(out, 1)


with torch.no_grad():
    encoded = model.model.encoder(input_ids=src, attention_mask=src_mask).last_hidden_state
    print("max |difference| of the log-probabilities:", (hf_steps(encoded) - hand_written_steps(encoded)).abs().max().item())
    for _ in range(5):
        t0 = time.perf_counter(); hf_steps(encoded)
        t1 = time.perf_counter(); hand_written_steps(encoded)
        t2 = time.perf_counter()
        print(f"HF {t1 - t0:.3f} s, hand-written {t2 - t1:.3f} s: HF / hand-written {(t1 - t0) / (t2 - t1):.2f}x")

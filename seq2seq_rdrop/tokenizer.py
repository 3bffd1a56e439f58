"""Character-level tokenizer for Chinese titles, stored as a BERT `vocab.txt`.

Every CJK character is one token (BERT's pre-tokenizer already splits them).
Latin letters and digits are also one token per character: a word such as "lstm" becomes
`l ##s ##t ##m` because the vocabulary holds single characters and their `##` forms only,
so WordPiece can never merge them. Text is lower-cased. The result is a plain
`transformers.BertTokenizer` that any Hugging Face code can load from the directory.
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable

from transformers import AutoTokenizer, BertTokenizer, PreTrainedTokenizerBase

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
        or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P") or (ch.isascii() and not ch.isalnum())


# Full-width letters and digits (Ａ-Ｚ, ａ-ｚ, ０-９, U+FF10-FF5A) -> their ASCII forms; BERT's normaliser
# keeps them apart, so ＡＢＣ１２３ was one [UNK] where ABC123 tokenizes. Only these: NFKC would also fold the
# full-width punctuation (，％（）～ ...) that CSL's training file holds 2,710 of, changing the vocabulary.
_FULL_WIDTH_ALNUM = {cp: cp - 0xFEE0 for cp in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]}


def fold_width(text: str) -> str:
    """`text` with full-width letters and digits as their half-width forms: what every tokenization (the
    vocabulary, training, generation) reads."""
    return text.translate(_FULL_WIDTH_ALNUM)


def build_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """Special tokens, then every character seen at least `min_count` times (most frequent first).
    Characters that can sit inside a word (letters, digits) also get their `##` continuation form."""
    counts = Counter(ch for text in texts for ch in fold_width(text).lower() if not ch.isspace())
    tokens = list(SPECIAL_TOKENS)
    continuation = []
    for ch, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n < min_count or ch in SPECIAL_TOKENS:
            continue
        tokens.append(ch)
        if not _is_cjk(ch) and not _is_punct(ch):
            continuation.append("##" + ch)
    return tokens + continuation


def build_tokenizer(texts: Iterable[str], out_dir: str | Path, min_count: int = 1) -> BertTokenizer:
    """Build the vocabulary, write `vocab.txt` into out_dir and load it as a BertTokenizer."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(build_vocab(texts, min_count)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer.from_pretrained(str(out_dir), do_lower_case=True)
    tokenizer.save_pretrained(str(out_dir))  # tokenizer_config.json too, so AutoTokenizer can load the directory
    return tokenizer


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer saved by us or shipped with a pretrained checkpoint directory. Hugging Face reads
    tokenizer.json when there is one and ignores vocab.txt beside it: the two must then be one vocabulary
    (check_vocab_files_agree), so that no reader of either file gets other ids."""
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    check_vocab_files_agree(Path(path), tokenizer)
    return tokenizer


def check_vocab_files_agree(path: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """ValueError (one line) when `path` holds both tokenizer.json (what `tokenizer` was read from) and a
    vocab.txt whose tokens, in line order, are not the tokenizer's in id order (a reordered or foreign one)."""
    if not ((path / "tokenizer.json").is_file() and (path / "vocab.txt").is_file()):
        return
    listed = (path / "vocab.txt").read_text(encoding="utf-8").split("\n")  # its size is capped by checkpoints.py
    if listed and listed[-1] == "":
        listed.pop()  # the final newline
    in_order = [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))]
    for i, (token, expected) in enumerate(zip(listed, in_order + [None] * len(listed))):
        if token.rstrip("\r") != expected:
            raise ValueError(f"vocab.txt and tokenizer.json are not one vocabulary (line {i + 1} of vocab.txt is "
                             f"{token!r}, id {i} of tokenizer.json {expected!r}): use the tokenizer files saved "
                             "together")


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, out_dir: str | Path) -> None:
    """Hugging Face tokenizer files plus a BERT-style vocab.txt when the vocabulary is WordPiece."""
    out_dir = Path(out_dir)
    tokenizer.save_pretrained(str(out_dir))
    vocab = tokenizer.get_vocab()
    if "[CLS]" in vocab and not (out_dir / "vocab.txt").exists():  # BERT-style: keep the plain vocab.txt too
        ordered = sorted(vocab.items(), key=lambda kv: kv[1])
        (out_dir / "vocab.txt").write_text("\n".join(t for t, _ in ordered) + "\n", encoding="utf-8")


def vocab_sha256(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of the vocabulary in id order: a checkpoint stores it (config.json) so that tokenizer files
    from another run, or a reordered vocab.txt, are refused at load instead of writing wrong titles."""
    ordered = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    return hashlib.sha256("\n".join(token for token, _ in ordered).encode("utf-8")).hexdigest()


def _word_boundary_prefix(text: str, max_len: int) -> str:
    """A prefix of `text` ending just before a character the tokenizers split words at (space, CJK,
    punctuation), about 4 x max_len characters long: its tokens are the first tokens of the whole text.
    The whole text when it is short, or when no boundary is near (one long word)."""
    limit = 4 * max_len + 64
    if len(text) <= limit:
        return text
    for end in range(limit, max(limit - 256, 0), -1):
        ch = text[end]
        if ch.isspace() or _is_cjk(ch) or _is_punct(ch):
            return text[:end]
    return text


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str, max_len: int | None = None) -> list[int]:
    """Token ids of `text` without special tokens, cut to max_len. A long text is cut at a word boundary
    before it is tokenized (a 2 MB abstract costs no more than a short one), the same ids as cutting after."""
    if max_len:
        prefix = _word_boundary_prefix(text, max_len)
        if prefix is not text:
            ids = tokenizer(fold_width(prefix), add_special_tokens=False)["input_ids"]
            if len(ids) >= max_len:
                return ids[:max_len]
    ids = tokenizer(fold_width(text), add_special_tokens=False)["input_ids"]
    return ids[:max_len] if max_len else ids


def decode_ids(tokenizer: PreTrainedTokenizerBase, ids: Iterable[int]) -> str:
    """Ids back to text: no spaces between CJK characters, `##` pieces glued to their word,
    one space between two Latin/digit words. Special tokens are dropped."""
    special = set(tokenizer.all_special_ids)
    out: list[str] = []
    prev_word = False  # was the previous piece part of a Latin/digit word?
    for tok in tokenizer.convert_ids_to_tokens([i for i in ids if i not in special]):
        if tok.startswith("##"):
            out.append(tok[2:])
            continue
        word = tok.isascii() and tok.isalnum()
        if word and prev_word:
            out.append(" ")
        out.append(tok)
        prev_word = word
    return "".join(out)


def _is_word_char(ch: str) -> bool:
    """Part of a Latin/digit word (what decode_ids glues together): letters and digits, not CJK."""
    return ch.isalnum() and not _is_cjk(ch)


def _words(text: str) -> list[str]:
    words, current = [], []
    for ch in text:
        if _is_word_char(ch):
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def restore_case(title: str, abstract: str) -> str:
    """The title with each Latin word written as the abstract writes it: the tokenizer lower-cases, so a
    generated `mri`, `ipv6` or `lte td` becomes MRI, IPv6, LTE TD when the abstract says so. A word takes
    the abstract's most frequent form of the same word (case aside; on a tie lower case if the abstract has
    it, as case then carries nothing, else the first), else the form of
    the same letters inside a longer abstract word (`mri` in fMRI; two letters or more). Only case changes: the title lower-cased
    is what it was, so scores (which lower-case both sides) cannot move. Words not in the abstract stay."""
    if not any(ch.isalpha() and not _is_cjk(ch) for ch in title):
        return title
    forms: dict[str, Counter] = {}
    order: dict[str, int] = {}
    abstract_words = _words(fold_width(abstract))
    for i, word in enumerate(abstract_words):
        key = word.lower()
        if len(key) == len(word):  # only forms whose lower case maps letter to letter
            forms.setdefault(key, Counter())[word] += 1
            order.setdefault(word, i)

    def surface(word: str) -> str:
        if word != word.lower() or not any(ch.isalpha() for ch in word):
            return word
        if word in forms:
            return max(forms[word].items(), key=lambda kv: (kv[1], kv[0] == word, -order[kv[0]]))[0]
        for candidate in abstract_words if len(word) > 1 else ():  # inside a longer word
            lower = candidate.lower()
            at = lower.find(word)
            if at >= 0 and len(lower) == len(candidate):
                return candidate[at:at + len(word)]
        return word

    out, current = [], []
    for ch in title + "\0":
        if _is_word_char(ch):
            current.append(ch)
            continue
        if current:
            out.append(surface("".join(current)))
            current = []
        out.append(ch)
    return "".join(out[:-1])

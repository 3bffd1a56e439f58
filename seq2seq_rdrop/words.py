"""Chinese word segmentation with jieba: the one home of how text becomes words (word-level ROUGE in
metrics.py, the word-boundary checks of title_form.py).

Text is lower-cased before jieba sees it (Latin words then segment the same however a title cases them) and
whitespace tokens are dropped. jieba loads its dictionary (about 1 s) at the first call, not at import: the
option checks import metrics.py before anything else. Its startup messages are silenced; segmentations are
cached, because every title of a file is checked against the same abstract several times.
"""
from __future__ import annotations

import logging
from functools import lru_cache


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)  # "Building prefix dict ... Loading model cost ..." on every first call
    jieba.initialize()
    return jieba


@lru_cache(maxsize=8192)
def words(text: str) -> tuple[str, ...]:
    """jieba's words of the lower-cased text (its default, accurate mode with the HMM for unknown words),
    whitespace dropped; a tuple, so that the cache can hand out the same one."""
    return tuple(w for w in _jieba().lcut(text.lower()) if not w.isspace())


class WordTokenizer:
    """Tokenizer object in the shape rouge-score expects (a `tokenize` method): jieba's words."""

    def tokenize(self, text: str) -> list[str]:
        return list(words(text))

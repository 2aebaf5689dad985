"""How product names and tags are cut for the search index, and how a customer's words
become a query on it.

Chinese searches are mostly one or two characters (粉, 奶茶), too short for SQLite's trigram
tokenizer, and Chinese has no spaces to split words at.  So each text is cut into
overlapping character pairs (bigrams: 臭豆腐 -> 臭豆 豆腐) and, for one-character searches,
into its characters; SQLite's FTS5 indexes those tokens with the unicode61 tokenizer
(migration 0013).  A search of two or more characters is then the phrase of its bigrams (a
run of consecutive pairs), one of a single character that character.  PostgreSQL's pg_bigm
indexes the same bigrams, so the design carries over.

The index must find exactly what the substring test it replaces (`instr(lower(text), q)`)
found.  Only the characters that every part agrees on are indexed: ASCII letters and digits
(lowered) and CJK ideographs.  Any other character (a space, 号's neighbour `·`, a
full-width bracket) ends a segment, and a separator token no search can ask for stands
between segments and between tags, so a phrase never runs across them.  Words holding any
other character are not `indexable`: the caller searches them by scanning, as before."""

from __future__ import annotations

from dataclasses import dataclass

# Between segments and tags: longer than any query token (one or two characters), so no
# search's phrase can ever match across it.
SEPARATOR = "zzz"


def _indexable_char(ch: str) -> bool:
    return (ch.isascii() and ch.isalnum()) or "\u3400" <= ch <= "\u9fff"


def indexable(words: str) -> bool:
    """Whether the (lower-cased) words can be searched through the index."""
    return bool(words) and all(_indexable_char(ch) for ch in words)


def segments(text: str) -> list[str]:
    """The runs of indexable characters of `text`, ASCII lowered as SQLite's lower() does."""
    found, run = [], []
    for ch in text:
        if _indexable_char(ch):
            run.append(ch.lower() if ch.isascii() else ch)
        elif run:
            found.append("".join(run))
            run = []
    if run:
        found.append("".join(run))
    return found


def _bigrams(segment: str) -> list[str]:
    return [segment[i:i + 2] for i in range(len(segment) - 1)]


def grams(texts: list[str]) -> str:
    """The bigram tokens of some texts (a name, or a product's tags), a separator between
    every two segments."""
    runs = [" ".join(_bigrams(s)) for text in texts for s in segments(text) if len(s) > 1]
    return f" {SEPARATOR} ".join(runs)


def characters(texts: list[str]) -> str:
    """Every indexable character of some texts, once each."""
    return " ".join(sorted({ch for text in texts for s in segments(text) for ch in s}))


@dataclass(frozen=True)
class IndexQuery:
    """FTS5 match expressions for one search's words: products whose name holds them, and
    products whose tags hold them but whose name does not (the two classes search ranks)."""

    by_name: str
    by_tag_only: str


def index_query(words: str) -> IndexQuery:
    """The expressions for `indexable` words (nothing in them needs quoting: only letters,
    digits and ideographs)."""
    if not indexable(words):
        raise ValueError(f"{words!r} cannot be searched through the index")
    if len(words) == 1:
        name, tags = f'{{name_chars}} : "{words}"', f'{{tag_chars}} : "{words}"'
    else:
        phrase = " ".join(_bigrams(words))
        name, tags = f'{{name_grams}} : "{phrase}"', f'{{tag_grams}} : "{phrase}"'
    return IndexQuery(by_name=name, by_tag_only=f"{tags} NOT {name}")

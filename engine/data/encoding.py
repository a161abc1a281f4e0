"""Name the legacy encoding of a file that is not UTF-8, and the command that converts it.

Japanese files from Excel or older Windows tools are usually Shift_JIS (CP932) or EUC-JP.
Both decodes are tried; the one that yields more ordinary Japanese text wins, because bytes of
one encoding often decode without error in the other, as half-width katakana or rare kanji.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from engine.data.problems import RecordError
from engine.phrases import phrase

UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# (label for the user, iconv name, Python codec)
_CANDIDATES = (("Shift_JIS (CP932)", "CP932", "cp932"), ("EUC-JP", "EUC-JP", "euc_jp"))


def _japanese_score(text: str) -> float:
    def ordinary(ch: str) -> bool:
        code = ord(ch)
        return (
            code < 0x80
            or 0x3000 <= code <= 0x30FF  # punctuation, hiragana, katakana
            or 0x4E00 <= code <= 0x9FFF  # common kanji
            or 0xFF01 <= code <= 0xFF5E  # full-width ASCII
        )

    return sum(map(ordinary, text)) / max(1, len(text))


def guess_encoding(sample: bytes) -> tuple[str, str] | None:
    """(label, iconv name) of the likeliest legacy encoding of `sample`, or None."""
    if sample.startswith(_UTF16_BOMS):
        return "UTF-16", "UTF-16"
    best: tuple[float, str, str] | None = None
    for label, iconv_name, codec in _CANDIDATES:
        try:
            score = _japanese_score(sample.decode(codec))
        except UnicodeDecodeError:
            continue
        if best is None or score > best[0]:
            best = (score, label, iconv_name)
    return (best[1], best[2]) if best and best[0] > 0.9 else None


def not_utf8(path: Path, line: bytes, offset: int) -> RecordError:
    """The error for a file whose `line` is not UTF-8 from byte `offset` on, with the fix if known."""
    guess = guess_encoding(line)
    byte = offset + 1
    if guess is None:
        return RecordError(
            "not-utf8", phrase("text is not UTF-8 (byte {byte} of the line)", byte=byte),
            hint=phrase("save the file as UTF-8 (e.g. {command})", command="iconv -f OLD_ENCODING -t UTF-8 IN > OUT"),
        )
    label, iconv_name = guess
    source = shlex.quote(str(path))
    target = shlex.quote(str(path.with_name(f"{path.stem}.utf8{path.suffix}")))
    command = f"iconv -f {iconv_name} -t UTF-8 {source} > {target}"
    return RecordError(
        "not-utf8", phrase("text is not UTF-8; it looks like {encoding} (byte {byte} of the line)",
                           encoding=label, byte=byte),
        hint=phrase("convert it: {command}", command=command),
    )

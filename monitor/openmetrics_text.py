"""Read back the OpenMetrics text that `/metrics` serves, family by family.

The OTLP push converts exactly what `/metrics` renders, so it parses that text. This
parser is several times faster than prometheus_client's (about 4 us a sample against
30 us: the exposition of 10,000 orgs has ~190,000 samples) because the common line, label
values without a backslash, is read with two regular expressions; anything else (escaped
label values) takes a careful scanner. Tests hold it to prometheus_client's own parser.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

Labels = dict[str, str]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# name{a="x",b="y"} value [timestamp], no backslash anywhere in the label values.
_FAST_SAMPLE = re.compile(
    rf"({_NAME})(?:\{{((?:[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"\\\\]*\",?)*)\}})? (\S+)(?: \S+)?"
)
_FAST_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*)"')
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_UNESCAPE = {"\\": "\\", "n": "\n", '"': '"'}


@dataclass
class Family:
    """One metric family: its metadata lines and its samples (name, labels, value)."""

    name: str
    type: str = "unknown"
    help: str = ""
    unit: str = ""
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)


class ExpositionError(ValueError):
    """Text that is not the OpenMetrics `/metrics` renders."""


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in _UNESCAPE:
            out.append(_UNESCAPE[text[index + 1]])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _scan_labels(text: str, start: int) -> tuple[Labels, int]:
    """The labels from `text[start]` (just after `{`) to the closing `}`; returns them
    and the index after the `}`."""
    labels: Labels = {}
    index = start
    while True:
        if text.startswith("}", index):
            return labels, index + 1
        name = _LABEL_NAME.match(text, index)
        if name is None or not text.startswith('="', name.end()):
            raise ExpositionError(f"bad label at column {index}")
        index = name.end() + 2
        chars = []
        while index < len(text) and text[index] != '"':
            if text[index] == "\\" and index + 1 < len(text):
                chars.append(_UNESCAPE.get(text[index + 1], "\\" + text[index + 1]))
                index += 2
            else:
                chars.append(text[index])
                index += 1
        if index >= len(text):
            raise ExpositionError("unterminated label value")
        labels[name.group()] = "".join(chars)
        index += 1
        if text.startswith(",", index):
            index += 1


def parse_sample(line: str) -> tuple[str, Labels, float]:
    """`name{labels} value [timestamp]` (a timestamp is ignored: `/metrics` sets none)."""
    fast = _FAST_SAMPLE.fullmatch(line)
    if fast is not None:
        name, label_text, value = fast.groups()
        found_labels = dict(_FAST_LABEL.findall(label_text)) if label_text else {}
        return name, found_labels, float(value)
    found = re.match(_NAME, line)
    if found is None:
        raise ExpositionError("a sample line must start with a metric name")
    name, index = found.group(), found.end()
    labels: Labels = {}
    if line.startswith("{", index):
        labels, index = _scan_labels(line, index + 1)
    rest = line[index:].split()
    if not line.startswith(" ", index) or not rest:
        raise ExpositionError(f"no value for {name}")
    return name, labels, float(rest[0])


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of an exposition handed over in pieces (a piece may end mid-line)."""
    rest = ""
    decoder = codecs.getincrementaldecoder("utf-8")()  # a piece may end mid-character too
    for chunk in chunks:
        text = rest + decoder.decode(chunk)
        lines = text.split("\n")
        rest = lines.pop()
        yield from lines
    rest += decoder.decode(b"", final=True)
    if rest:
        yield rest


def parse_families(chunks: Iterable[bytes]) -> Iterator[Family]:
    """Every family of an OpenMetrics exposition, in order, up to `# EOF`. A family
    starts at a metadata line (`# HELP`, `# TYPE`, `# UNIT`) naming a new family."""
    family: Family | None = None
    for line in _lines(chunks):
        if not line:
            continue
        if line.startswith("#"):
            if line == "# EOF":
                break
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE", "UNIT"):
                continue  # a comment
            keyword, name, text = parts[1], parts[2], parts[3] if len(parts) > 3 else ""
            if family is None or family.name != name:
                if family is not None:
                    yield family
                family = Family(name)
            if keyword == "HELP":
                family.help = _unescape(text)
            elif keyword == "TYPE":
                family.type = text
            else:
                family.unit = text
            continue
        sample = parse_sample(line)
        if family is None:
            raise ExpositionError(f"sample {sample[0]} before any family")
        family.samples.append(sample)
    if family is not None:
        yield family

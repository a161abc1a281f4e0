"""The data check's report as text: what `tanren data check` prints and the workbench's Data screen
shows, written once for both."""

from __future__ import annotations

from engine.data.check import Finding, Report
from engine.data.hub import numbering
from engine.data.kinds import FORMAT_KINDS, PAIRS, RATINGS

# What one usable record is called, by the kind of data (engine.data.kinds)
NOUNS = {PAIRS: "preference pair", RATINGS: "rated example"}


def format_report(report: Report, *, base: str | None) -> str:
    how = f"detected from {numbering(report.path)} {report.detected_at}" if report.detected_at else "given"
    fmt = f"{report.format} format ({how})" if report.format else "format unknown"
    noun = NOUNS.get(report.kind, "example")
    lines = [f"{report.path}: {fmt}, {_count(report.examples, 'usable ' + noun)}"]
    if report.labels is not None:
        lines[0] += f" ({report.labels[0]:,} desirable, {report.labels[1]:,} undesirable)"
    if report.validation_path:
        noun = NOUNS.get(FORMAT_KINDS.get(report.validation_format), "example")
        lines.append(f"validation: {report.validation_path}, {_count(report.validation_examples, 'usable ' + noun)}")
    for title, findings in (("errors (the file cannot be used)", report.errors), ("warnings", report.warnings)):
        if findings:
            lines += ["", f"{title}:"] + [line for f in findings for line in _finding(f)]
    if report.lengths:
        lines += ["", _lengths(report, base)]
        if report.kind == PAIRS and report.lengths.unit == "tokens":
            lines.append("(each pair counts as two conversations: the prompt with its chosen answer, and with its "
                         "rejected one)")
    train, validation, test = report.split
    lines.append(f"split (seed {report.seed}): train {train:,} · validation {validation:,} · test {test:,}")
    lines.append("")
    if report.usable:
        warned = sum(f.count for f in report.warnings)
        lines.append(f"usable ({_count(warned, 'warning')})" if warned else "usable, no problems found")
    else:
        lines.append(f"not usable: fix the {_count(sum(f.count for f in report.errors), 'error')} above")
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _finding(finding: Finding) -> list[str]:
    lines = [f"  {finding.title}: {finding.count:,}"]
    lines += [f"    {example}" for example in finding.examples]
    if finding.count > len(finding.examples):
        lines.append(f"    … and {finding.count - len(finding.examples):,} more")
    if finding.hint:
        lines.append(f"    hint: {finding.hint}")
    return lines


def _lengths(report: Report, base: str | None) -> str:
    s = report.lengths
    unit = f"{s.unit}, {base}" if base else s.unit
    line = (f"length ({unit}): min {s.min:,} · median {s.p50:,} · p90 {s.p90:,} · p99 {s.p99:,} · max {s.max:,}; "
            f"{s.total:,} in all")
    if s.trained_share is not None:
        line += f", {s.trained_share:.0%} trained"
    if s.measured < s.examples:
        line += f" (estimated from a sample of {s.measured:,} examples)"
    if s.windows is not None:
        line += (f"\ntext records longer than max_length {report.max_length:,} become windows: "
                 f"{_count(s.windows, 'training window')} in all")
    return line

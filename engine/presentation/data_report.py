"""The data check's report as text: what `tanren data check` prints and the workbench's Data screen
shows, written once for both, in the language of the `_` it is given."""

from __future__ import annotations

from engine.data.check import Finding, Report
from engine.data.hub import numbered
from engine.data.kinds import FORMAT_KINDS, PAIRS, RATINGS
from engine.i18n import N_, Gettext
from engine.phrases import in_language

Forms = tuple[str, str]  # the message for one, and for any other count (Japanese has one form)

# How many usable records there are, by the kind of data (engine.data.kinds)
USABLE: dict[str | None, Forms] = {
    PAIRS: (N_("{count:,} usable preference pair"), N_("{count:,} usable preference pairs")),
    RATINGS: (N_("{count:,} usable rated example"), N_("{count:,} usable rated examples")),
}
USABLE_EXAMPLES = (N_("{count:,} usable example"), N_("{count:,} usable examples"))
WARNED = (N_("usable ({count:,} warning)"), N_("usable ({count:,} warnings)"))
NOT_USABLE = (N_("not usable: fix the {count:,} error above"), N_("not usable: fix the {count:,} errors above"))
WINDOWS = (N_("{count:,} training window"), N_("{count:,} training windows"))
UNITS = {"tokens": N_("tokens"), "characters": N_("characters")}  # LengthStats.unit


def format_report(report: Report, *, base: str | None, _: Gettext) -> str:
    lines = [_("{path}: {format}, {usable}", path=report.path, format=_format(report, _),
               usable=_counted(USABLE.get(report.kind, USABLE_EXAMPLES), report.examples, _))]
    if report.labels is not None:
        lines[0] = _("{line} ({desirable:,} desirable, {undesirable:,} undesirable)", line=lines[0],
                     desirable=report.labels[0], undesirable=report.labels[1])
    if report.validation_path:
        forms = USABLE.get(FORMAT_KINDS.get(report.validation_format), USABLE_EXAMPLES)
        lines.append(_("validation: {path}, {usable}", path=report.validation_path,
                       usable=_counted(forms, report.validation_examples, _)))
    for title, findings in ((_("errors (the file cannot be used):"), report.errors), (_("warnings:"), report.warnings)):
        if findings:
            lines += ["", title] + [line for f in findings for line in _finding(f, _)]
    if report.lengths:
        lines += ["", _lengths(report, base, _)]
        if report.kind == PAIRS and report.lengths.unit == "tokens":
            lines.append(_("(each pair counts as two conversations: the prompt with its chosen answer, and with its "
                           "rejected one)"))
    train, validation, test = report.split
    lines.append(_("split (seed {seed}): train {train:,} · validation {validation:,} · test {test:,}",
                   seed=report.seed, train=train, validation=validation, test=test))
    lines.append("")
    if report.usable:
        warned = sum(f.count for f in report.warnings)
        lines.append(_counted(WARNED, warned, _) if warned else _("usable, no problems found"))
    else:
        lines.append(_counted(NOT_USABLE, sum(f.count for f in report.errors), _))
    return "\n".join(lines)


def _format(report: Report, _: Gettext) -> str:
    if not report.format:
        return _("format unknown")
    if report.detected_at:
        line = numbered(report.path, report.detected_at).translate(_)
        return _("{format} format (detected from {line})", format=report.format, line=line)
    return _("{format} format (given)", format=report.format)


def _counted(forms: Forms, count: int, _: Gettext) -> str:
    return _(forms[count != 1], count=count)


def _finding(finding: Finding, _: Gettext) -> list[str]:
    lines = [f"  {_(finding.title)}: {finding.count:,}"]
    lines += [f"    {where}: {in_language(detail, _)}" for where, detail in finding.places]
    if finding.count > len(finding.places):
        lines.append("    " + _("… and {count:,} more", count=finding.count - len(finding.places)))
    if finding.advice is not None:
        lines.append("    " + _("hint: {hint}", hint=in_language(finding.advice, _)))
    return lines


def _lengths(report: Report, base: str | None, _: Gettext) -> str:
    s = report.lengths
    unit = _("{unit}, {base}", unit=_(UNITS[s.unit]), base=base) if base else _(UNITS[s.unit])
    line = _("length ({unit}): min {min:,} · median {median:,} · p90 {p90:,} · p99 {p99:,} · max {max:,}; "
             "{total:,} in all", unit=unit, min=s.min, median=s.p50, p90=s.p90, p99=s.p99, max=s.max, total=s.total)
    if s.trained_share is not None:
        line += _(", {share:.0%} trained", share=s.trained_share)
    if s.measured < s.examples:
        line += _(" (estimated from a sample of {count:,} examples)", count=s.measured)
    if s.windows is not None:
        line += "\n" + _("text records longer than max_length {max_length:,} become windows: {windows} in all",
                         max_length=report.max_length, windows=_counted(WINDOWS, s.windows, _))
    return line

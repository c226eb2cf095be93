"""Reply-extraction benchmark: `mailrelay.reply_text.extract` on every case of the reply corpus.

Scored by the corpus README: a case is **ok** when every expected line remains (whitespace folded)
and nothing remains beyond expected/optional lines, **loss** when an expected line is missing,
**leak** when a quoted line remains. A result with ok=False was held back for the agent: **held**,
neither ok nor leak. Two readings the README leaves open, made explicit here:

- Discourse's trimmed texts keep some `>` lines (its trimmer keeps inline quotes). Our product never
  publishes a quoted line, so those lines count as quoted ones: their absence is no loss, their
  presence a leak. Where they stood, a paragraph break is expected.
- A published line that is neither expected nor optional is a leak when it is quoted (github `Q`)
  or of unknown origin (any unexpected line of a discourse case); a github signature/footer line
  (`G`) left over is **extra**: not ok, but no quoted text either.

    .venv/bin/python bench/replies_corpus.py [CORPUS_DIR]     (exit 1 when anything leaked)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailrelay.reply_text import Extraction, extract

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "replies"
SOURCES = ("discourse", "github")
CATEGORIES = ("ok", "held", "loss", "extra", "leak")


@dataclass(frozen=True)
class Verdict:
    source: str
    name: str
    category: str  # one of CATEGORIES
    detail: str


def fold(line: str) -> str:
    """A line compared with its whitespace folded."""
    return " ".join(line.split())


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")


def paragraphs(lines: list[str]) -> list[list[str]]:
    """Folded non-empty lines grouped by blank lines (any number of blank lines is one break)."""
    groups: list[list[str]] = [[]]
    for line in lines:
        folded = fold(line)
        if folded:
            groups[-1].append(folded)
        elif groups[-1]:
            groups.append([])
    return [group for group in groups if group]


def published(result: Extraction) -> list[str]:
    return result.text.split("\n")


def is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


# --------------------------------------------------------------------------- discourse


def judge_discourse(name: str, email: str, trimmed: str) -> Verdict:
    """The whole trimmed file is expected; its quoted lines are quoted lines (see above)."""
    result = extract(email)
    expected_lines = ["" if is_quoted(line) else line for line in trimmed.split("\n")]
    quoted = {fold(line) for line in trimmed.split("\n") if is_quoted(line)}
    expected = paragraphs(expected_lines)
    if not result.ok:
        nothing = " (nothing publishable expected)" if not expected else ""
        return Verdict("discourse", name, "held", f"{result.reason}{nothing}")
    got = paragraphs(published(result))
    wanted = {line for group in expected for line in group}
    kept = {line for group in got for line in group}
    unexpected = [line for group in got for line in group if line not in wanted]
    if unexpected:
        what = "quoted" if unexpected[0] in quoted else "unexpected"
        return Verdict("discourse", name, "leak", f"{what} line left: {unexpected[0][:70]!r}")
    missing = [line for line in sorted(wanted) if line not in kept]
    if missing:
        return Verdict("discourse", name, "loss", f"missing {missing[0][:70]!r}")
    if got != expected:
        return Verdict("discourse", name, "loss", "lines or paragraphs out of order")
    return Verdict("discourse", name, "ok", result.cut_at or "")


# --------------------------------------------------------------------------- github


def judge_github(name: str, email: str, labels: dict[str, Any]) -> Verdict:
    """K must remain in order, S may remain; a Q line left is a leak, a G line is extra."""
    result = extract(email)
    if not result.ok:
        return Verdict("github", name, "held", str(result.reason))
    keep = [fold(line) for line in labels["K"] if fold(line)]
    optional = {fold(line) for line in labels["S"]}
    footer = {fold(line) for line in labels["G"]}
    quoted = {fold(line) for line in labels["Q"]}
    got = [fold(line) for line in published(result) if fold(line)]
    allowed = set(keep) | optional
    for line in got:
        if line in allowed:
            continue
        if line in footer and line not in quoted:
            return Verdict("github", name, "extra", f"signature/footer left: {line[:70]!r}")
        what = "quoted" if line in quoted else "unexpected"
        return Verdict("github", name, "leak", f"{what} line left: {line[:70]!r}")
    if not in_order(keep, got):
        missing = next((line for line in keep if line not in got), "(order)")
        return Verdict("github", name, "loss", f"missing {missing[:70]!r}")
    return Verdict("github", name, "ok", result.cut_at or "")


def in_order(needles: list[str], haystack: list[str]) -> bool:
    """Every needle appears in the haystack, in this order."""
    position = 0
    for needle in needles:
        try:
            position = haystack.index(needle, position) + 1
        except ValueError:
            return False
    return True


# --------------------------------------------------------------------------- scoring


def judge_all(corpus_dir: Path) -> list[Verdict]:
    verdicts: list[Verdict] = []
    discourse = corpus_dir / "discourse"
    for email in sorted((discourse / "emails").glob("*.txt")):
        trimmed = read(discourse / "trimmed" / email.name)
        verdicts.append(judge_discourse(email.stem, read(email), trimmed))
    github = corpus_dir / "github"
    for email in sorted((github / "emails").glob("*.txt")):
        labels = json.loads(read(github / "expected" / f"{email.stem}.json"))
        verdicts.append(judge_github(email.stem, read(email), labels))
    return verdicts


def tally(verdicts: list[Verdict]) -> dict[str, Any]:
    counts: dict[str, Any] = {"cases": len(verdicts)}
    for category in CATEGORIES:
        counts[category] = sum(1 for verdict in verdicts if verdict.category == category)
    counts["ok_pct"] = round(100 * counts["ok"] / len(verdicts), 1) if verdicts else 0.0
    return counts


def score(corpus_dir: Path = CORPUS) -> dict[str, Any]:
    """Counts per source and overall, and every case that is not ok."""
    verdicts = judge_all(corpus_dir)
    report: dict[str, Any] = {
        source: tally([v for v in verdicts if v.source == source]) for source in SOURCES
    }
    report["overall"] = tally(verdicts)
    report["failures"] = [
        {"source": v.source, "name": v.name, "category": v.category, "detail": v.detail}
        for v in verdicts
        if v.category != "ok"
    ]
    return report


def print_report(report: dict[str, Any]) -> None:
    header = f"{'source':<10} {'cases':>5} {'ok':>4} {'held':>4} {'loss':>4} {'extra':>5} "
    print(header + f"{'leak':>4} {'ok %':>6}")
    for source in (*SOURCES, "overall"):
        row = report[source]
        print(
            f"{source:<10} {row['cases']:>5} {row['ok']:>4} {row['held']:>4} {row['loss']:>4} "
            f"{row['extra']:>5} {row['leak']:>4} {row['ok_pct']:>6.1f}"
        )
    if report["failures"]:
        print("\nnot ok:")
        for failure in report["failures"]:
            print(
                f"  {failure['source']}/{failure['name']}: {failure['category']} — "
                f"{failure['detail']}"
            )


def main(argv: list[str]) -> int:
    corpus_dir = Path(argv[1]) if len(argv) > 1 else CORPUS
    report = score(corpus_dir)
    print_report(report)
    return 1 if report["overall"]["leak"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The trigger locale (SPEC "Trigger locale") measured: which locale each trigger of the corpus
gets and from which source, and how the detector reads language-labelled short texts (the
`keep` lines of tests/corpus/replies, 30+ languages) in low and high accuracy mode.

Usage: python bench/trigger_locales.py [TRIGGER_FOLDER ...]
(default: ../shared/corpus/triggers and tests/corpus/triggers, whichever exist).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mailrelay.parsing import parse_trigger
from mailrelay.parsing.locale import build_detector, detect_language, map_locale, shipped_locales

TRIGGER_FOLDERS = (Path("../shared/corpus/triggers"), Path("tests/corpus/triggers"))
LABELLED = Path("tests/corpus/replies")


def triggers(folders: list[Path]) -> None:
    """One line per trigger, then the counts by locale and by source."""
    by_locale: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    started = time.perf_counter()
    for folder in folders:
        for path in sorted(folder.glob("*.eml")):
            notice = parse_trigger(path.read_bytes())
            locale, source = notice.locale or "(shop)", notice.locale_source or "shop"
            print(f"  {path.name:40} {locale:8} {source}")
            by_locale[locale] += 1
            by_source[source] += 1
    elapsed = time.perf_counter() - started
    print(f"{sum(by_locale.values())} triggers in {elapsed:.2f} s (detector built on first use)")
    print("  by locale:", dict(by_locale.most_common()))
    print("  by source:", dict(by_source.most_common()))


def labelled_texts() -> list[tuple[str, str]]:
    """(language, text) from the replies corpus: the lines a reply keeps, in its language."""
    texts = []
    for path in sorted(LABELLED.glob("*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        text = " ".join(case.get("keep") or [])
        if case.get("lang") and text:
            texts.append((str(case["lang"]).split("-")[0], text))
    return texts


def detection(low_accuracy: bool, texts: list[tuple[str, str]]) -> None:
    """How often the rule's mapped answer is right: the shipped language for a text in it, no
    locale (the shop's) for a text in any other."""
    started = time.perf_counter()
    detector: Any = build_detector(low_accuracy=low_accuracy)
    built = time.perf_counter() - started
    shipped = shipped_locales()
    outcome: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    started = time.perf_counter()
    for language, text in texts:
        got = map_locale(detect_language(text, detector), shipped)
        want = language if language in shipped else None
        if got == want:
            outcome["right" if want else "right (shop's locale)"] += 1
        elif got is None:
            outcome["missed (shop's locale)"] += 1
        else:
            outcome["wrong locale"] += 1
            wrong[f"{language}→{got}"] += 1
    took = time.perf_counter() - started
    mode = "low" if low_accuracy else "high"
    print(f"{mode} accuracy: built in {built:.2f} s, {len(texts)} texts in {took:.2f} s:",
          dict(outcome.most_common()))
    print("  wrong:", dict(wrong.most_common(12)))


def main(folders: list[Path]) -> None:
    triggers(folders)
    texts = labelled_texts()
    if texts:
        print(f"\n{len(texts)} language-labelled texts, by language:",
              dict(Counter(language for language, _ in texts).most_common(8)), "…")
        for low_accuracy in (True, False):
            detection(low_accuracy, texts)


if __name__ == "__main__":
    main([Path(arg) for arg in sys.argv[1:]] or [f for f in TRIGGER_FOLDERS if f.is_dir()])

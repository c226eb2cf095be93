"""Which locale each trigger of a corpus gets, and from which source (SPEC "Trigger locale").

Usage: python bench/trigger_locales.py [FOLDER ...]  (default: ../shared/corpus/triggers and
tests/corpus/triggers, whichever exist). Prints one line per message, then the counts.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from mailrelay.parsing import parse_trigger

DEFAULT_FOLDERS = (Path("../shared/corpus/triggers"), Path("tests/corpus/triggers"))


def main(folders: list[Path]) -> None:
    by_locale: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    started = time.perf_counter()
    count = 0
    for folder in folders:
        for path in sorted(folder.glob("*.eml")):
            notice = parse_trigger(path.read_bytes())
            locale, source = notice.locale or "(shop)", notice.locale_source or "shop"
            print(f"{path.name:40} {locale:8} {source}")
            by_locale[locale] += 1
            by_source[source] += 1
            count += 1
    elapsed = time.perf_counter() - started
    print(f"\n{count} triggers in {elapsed:.2f} s (detector built on first use)")
    print("by locale:", dict(by_locale.most_common()))
    print("by source:", dict(by_source.most_common()))


if __name__ == "__main__":
    main([Path(arg) for arg in sys.argv[1:]] or [f for f in DEFAULT_FOLDERS if f.is_dir()])

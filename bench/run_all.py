"""`make bench`: every benchmark under bench/, one after another, each printing its own table."""

import subprocess
import sys
from pathlib import Path

BENCHES = [
    "bench_embedder.py",
    "bench_html_extractors.py",
    "bench_ingest.py",
    "bench_launch.py",
]


def main() -> int:
    here = Path(__file__).parent
    failed = 0
    for name in BENCHES:
        print(f"\n=== {name} ===", flush=True)
        failed += subprocess.call([sys.executable, str(here / name)]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

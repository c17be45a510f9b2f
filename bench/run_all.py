"""`make bench` (or `make bench-quick`): every scenario, one after another, then the report.

Each script runs in its own process and writes bench/results/<name>.json; bench/report.py
turns them into bench/results/latest.md. `--quick` runs the same scenarios on a 30-page corpus,
a 20,000-chunk search index, 3 launches, 10-second polling loads and 50 SciFact queries over
about 350 abstracts, and
sites of 200 and 1,000 pages for the scale scenario (a few minutes in all).
"""

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
# Scenario order: the heavy ingests first, while the machine is cold and quiet.
BENCHES = [
    "bench_sync.py",  # 1-3
    "bench_peers.py",  # 4
    "bench_launch.py",  # 5
    "bench_polling.py",  # 6
    "bench_search.py",  # 7
    "bench_freshness.py",  # 8
    "bench_quality.py",  # 9
    "bench_scale.py",  # 10
]


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    started = time.perf_counter()
    failed = []
    for result in (HERE / "results").glob("*.json"):
        result.unlink()  # a report never mixes figures of two runs
    for name in BENCHES:
        print(f"\n=== {name} ===", flush=True)
        args = [sys.executable, str(HERE / name)] + (["--quick"] if quick else [])
        if subprocess.call(args, cwd=HERE) != 0:
            failed.append(name)
    run = {
        "target": "bench-quick" if quick else "bench",
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "failed": failed,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "run.json").write_text(json.dumps(run) + "\n")
    subprocess.call([sys.executable, str(HERE / "report.py")], cwd=HERE)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The kill test, longer and by hand: SIGKILL a worker at random moments many times, then compare
everything it wrote with an uninterrupted run of its input partitions.

    bash scripts/kafka.sh start
    .venv/bin/python scripts/kill_test.py --kills 50 --events 40000

It deletes and recreates the ledger's topics: run it on a development broker only. Exit status 1
and the first difference if the outputs disagree.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.codec import Codec  # noqa: E402
from streams.demo import produce  # noqa: E402
from streams.ops.chains import written_outputs  # noqa: E402
from streams.topics import JOURNAL  # noqa: E402
from streams.workload import generate  # noqa: E402
from tests.integration.worker_harness import (  # noqa: E402
    WorkerProcess,
    fresh_topics,
    verify,
    wait_caught_up,
    wait_for_progress,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("PERPLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    fresh_topics(args.bootstrap, args.partitions)
    events = list(generate(args.seed, args.events, n_markets=3, n_users=500))
    produce(args.bootstrap, events, "", Codec())
    app_id = f"kill-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="perpledger-kill-") as tmp:
        worker = WorkerProcess(args.bootstrap, app_id, args.partitions, Path(tmp) / "data-0",
                               Path(tmp) / "worker.log")
        journal_end = 0
        try:
            for kill in range(1, args.kills + 1):
                worker.start()
                if kill % 4 == 0:
                    time.sleep(rng.uniform(0.5, 3.0))
                else:
                    journal_end = wait_for_progress(args.bootstrap, JOURNAL, journal_end, timeout_s=120)
                    time.sleep(rng.uniform(0.0, 1.5))
                worker.kill()
                if kill % 3 == 0:
                    worker.env["PERPLEDGER_DATA_DIR"] = str(Path(tmp) / f"data-{kill}")
                print(f"kill {kill}: journal at {journal_end:,} records", flush=True)
            worker.start()
            wait_caught_up(args.bootstrap, app_id, timeout_s=1800, workers=(worker,))
        finally:
            worker.stop()
    difference = verify(args.bootstrap)
    written = written_outputs(args.bootstrap)
    batches = sum(len(chain) for chain in written.chains.values())
    print(f"{batches:,} journal batches, {written.copies:,} sent again after a kill, "
          f"{len(written.rejections):,} rejections, {len(written.dead_letters):,} dead letters")
    print("identical to an uninterrupted run" if difference is None else f"DIFFERENT: {difference}")
    return 0 if difference is None else 1


if __name__ == "__main__":
    sys.exit(main())

"""How long planning and recording a large job takes: it grows with tasks, not frames.

    python bench/bench_plan.py

Plans 1,000 / 10,000 / 100,000 frames into 100 tasks (with a scout task) and records them
in a fresh job store, side by side, and prints the times and the rows written.
"""

import tempfile
import time
from pathlib import Path

from braas_globus.plan import plan_tasks
from braas_globus.store import Store
from braas_globus.worker.frames import parse_frames


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "jobs.sqlite")
        print(f"{'frames':>8} {'parse':>9} {'plan':>9} {'record':>9} {'rows':>6}")
        for count in (1_000, 10_000, 100_000):
            job_id = f"job-{count}"
            started = time.perf_counter()
            frames = parse_frames(f"1-{count}")
            parsed = time.perf_counter()
            tasks = plan_tasks(frames, 100, scout=True)
            planned = time.perf_counter()
            store.create_job(job_id=job_id, project="bench", preset="local", backend="local",
                             spec={}, frames=f"1-{count}", frame_count=count, folder=Path(tmp))
            store.add_tasks(job_id, tasks, max_attempts=3, blender={}, entry="in/x.blend")
            recorded = time.perf_counter()
            rows = store.db.execute("SELECT count(*) FROM tasks WHERE job_id = ?",
                                    (job_id,)).fetchone()[0]
            print(f"{count:>8} {1000 * (parsed - started):>7.1f}ms {1000 * (planned - parsed):>7.1f}ms "
                  f"{1000 * (recorded - planned):>7.1f}ms {rows:>6}")


if __name__ == "__main__":
    main()

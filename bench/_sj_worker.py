"""One worker process of `spikingjelly_compare.run_spikingjelly(workers=N)`: runs a converted SpikingJelly
network (pickled) on its share of the batches with one torch thread, and writes its decisions.

    python bench/_sj_worker.py FOLDER WORKER

FOLDER holds model.pkl, job.pkl (steps, check_steps, max_s, batches: [(index, array)]); the worker
writes result-WORKER.pkl: [(index, pred, {step: pred})] for the batches it finished. Imports only
torch and SpikingJelly (not bioconv or Brian2), so it starts in about a second.
"""
from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import torch


def main(folder: str, worker: int) -> None:
    torch.set_num_threads(1)
    from spikingjelly.activation_based import functional

    folder = Path(folder)
    snn = pickle.loads((folder / "model.pkl").read_bytes())
    job = pickle.loads((folder / f"job-{worker}.pkl").read_bytes())
    steps, check, max_s = job["steps"], set(job["check_steps"]), job["max_s"]
    out, t0 = [], time.perf_counter()
    with torch.no_grad():
        for done, (index, xb) in enumerate(job["batches"], 1):
            xb = torch.from_numpy(xb)
            functional.reset_net(snn)
            acc, at = None, {}
            for t in range(1, steps + 1):
                step = snn(xb)
                acc = step if acc is None else acc + step
                if t in check:
                    at[t] = acc.argmax(1).numpy()
            out.append((index, acc.argmax(1).numpy(), at))
            elapsed = time.perf_counter() - t0
            if max_s is not None and done < len(job["batches"]) and elapsed * (done + 1) / done > max_s:
                break
    tmp = folder / f"result-{worker}.tmp"
    tmp.write_bytes(pickle.dumps(out))
    tmp.replace(folder / f"result-{worker}.pkl")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

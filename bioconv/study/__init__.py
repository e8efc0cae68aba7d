"""Studies: one folder per study in studies/ (config.toml + README), the code that runs it here."""
from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

from tqdm.auto import tqdm

STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"
STUDIES = ("rate_validation", "conversion_error", "seed003_fig7", "seed003_fig8", "seed003_fig13", "ttfs",
           "coding_schemes")


def load_config(name: str, full: bool = False, path: Path | None = None) -> dict:
    """The ``quick`` (default) or ``full`` settings of study ``name``, from studies/NAME/config.toml
    or from the TOML file ``path`` (same layout)."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; available: {', '.join(STUDIES)}")
    path = Path(path) if path else STUDIES_DIR / name / "config.toml"
    with open(path, "rb") as fh:
        config = tomllib.load(fh)
    mode = "full" if full else "quick"
    if mode not in config:
        raise ValueError(f"{path}: no [{mode}] settings")
    return config[mode]


def run_study(name: str, *, full: bool = False, out: Path | None = None, device: str = "cpp",
              config: Path | None = None, threads: int | None = None) -> Path:
    """Run study ``name``; write tables (CSV), figures (PNG) and summary.md to ``out``; return it."""
    cfg = load_config(name, full, config)
    if threads is not None:
        cfg["threads"] = threads
    out = Path(out) if out else Path("results") / name
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if name == "rate_validation":
        from . import rate_report, rate_validation
        tables = rate_validation.run(cfg, out, device=device, progress=tqdm)
        rate_report.plot(tables, out)
        (out / "summary.md").write_text(rate_report.summarize(tables, cfg))
    elif name == "conversion_error":
        from . import conversion_error, conversion_report
        tables = conversion_error.run(cfg, out, device=device, progress=tqdm)
        conversion_report.plot(tables, out)
        (out / "summary.md").write_text(conversion_report.summarize(tables, cfg))
    elif name == "ttfs":  # LC-TTFS (seed 004): simulates itself on the runtime device, whatever `device`
        from . import ttfs, ttfs_report
        tables = ttfs.run(cfg, out, progress=tqdm)
        ttfs_report.plot(tables, out)
        (out / "summary.md").write_text(ttfs_report.summarize(tables, cfg))
    elif name == "coding_schemes":  # rate vs phase vs TTFS vs CSS (issue 13), each code on its own device
        from . import coding_schemes, coding_schemes_report
        tables = coding_schemes.run(cfg, out, progress=tqdm)
        coding_schemes_report.plot(tables, out)
        (out / "summary.md").write_text(coding_schemes_report.summarize(tables, cfg, "full" if full else "quick"))
    elif name in ("seed003_fig7", "seed003_fig8"):
        from . import seed003_sweeps
        figure = int(name[len("seed003_fig"):])
        tables = seed003_sweeps.run(figure, cfg, out)
        seed003_sweeps.plot(figure, tables, cfg, out)
        (out / "summary.md").write_text(seed003_sweeps.summarize(figure, tables, cfg, "full" if full else "quick"))
    elif name == "seed003_fig13":
        from . import seed003_fig13
        tables = seed003_fig13.run(cfg, out)
        seed003_fig13.plot(tables, cfg, out)
        (out / "summary.md").write_text(seed003_fig13.summarize(tables, cfg, "full" if full else "quick"))
    (out / "run.json").write_text(json.dumps(dict(study=name, mode="full" if full else "quick", device=device,
                                                  wall_s=round(time.perf_counter() - t0, 1), config=cfg),
                                             indent=2))
    return out

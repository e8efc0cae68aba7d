"""`bioconv demo` (the main job behind `make demo`) runs every study of `cli.DEMO_STUDIES` with its quick
settings, each into its own folder, then prints their summaries; the studies themselves are stubbed."""
from bioconv import cli, study


def test_demo_runs_each_main_job_study_quick_and_prints_its_summary(monkeypatch, tmp_path, capsys):
    assert cli.DEMO_STUDIES == ("rate_validation", "conversion_error", "ttfs", "coding_schemes")
    ran = []

    def run_study(name, *, full, out, device, config, threads):
        ran.append((name, full, out, config))
        out.mkdir(parents=True)
        (out / "summary.md").write_text(f"summary of {name}")
        return out
    monkeypatch.setattr(study, "run_study", run_study)
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    assert ran == [(name, False, tmp_path / name, None) for name in cli.DEMO_STUDIES]
    printed = capsys.readouterr().out
    assert all(f"summary of {name}" in printed for name in cli.DEMO_STUDIES)

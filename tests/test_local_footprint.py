"""The local pipeline folder stays the size of one run's: completed load packages (job files
and a copy of the state each) are deleted after the run that follows them."""

from __future__ import annotations

from pathlib import Path


def footprint(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def test_the_local_folder_is_flat_over_100_no_change_runs(polled_sim, run_polled, pipeline,
                                                         monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    job = lobstr.add("a" * 32, ["SUCCESS"])
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{job}"]')
    folder = Path(pipeline.working_dir)
    sizes = []
    for run in range(100):
        report = run_polled("lobstr")
        assert report.exit_code == 0, report.providers[0].errors
        if run in (9, 99):
            sizes.append(footprint(folder))

    (files_10, bytes_10), (files_100, bytes_100) = sizes
    assert files_100 == files_10
    assert bytes_100 <= bytes_10 * 1.05 + 4096, sizes  # traces and state vary by a few bytes
    assert len(pipeline.list_completed_load_packages()) <= 2  # this run's: the load, the schema


def test_the_packages_of_the_last_run_are_kept_for_inspection(polled_sim, run_polled,
                                                              pipeline, monkeypatch):
    """`dlt pipeline ... load-package` still shows the last run's packages."""
    lobstr = polled_sim.fixtures["lobstr"]
    job = lobstr.add("b" * 32, ["SUCCESS"])
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{job}"]')
    run_polled("lobstr")
    from pipelines.common.local_state import prune_loaded_packages

    kept = set(pipeline.list_completed_load_packages())
    assert prune_loaded_packages(pipeline, keep=kept) == 0
    assert prune_loaded_packages(pipeline, keep=set()) == len(kept)
    assert pipeline.list_completed_load_packages() == []

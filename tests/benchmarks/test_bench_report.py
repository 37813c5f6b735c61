"""benchmarks/_report.py: each script rewrites its own section of BENCHMARKS.md, in its subject, with the contents
table kept current."""

import re

from benchmarks import _report
from benchmarks._report import CHANGELOG, TOC_START, place, subject_of, tidy, with_contents, write_section

DOC = f"""# Benchmarks

intro

<!-- bench:api -->
## REST API

`python benchmarks/bench_api.py` (x86_64, 2 cores, 2026-11-25)

old api figures
<!-- /bench:api -->

## Latency and memory predictors

<!-- bench:latency-load -->
### cpu-host fidelity under load (5 profiling runs of tiny-mbv3)

`python benchmarks/bench_latency.py --runs 5` (x86_64, 2 cores, 2026-12-01)

load figures
<!-- /bench:latency-load -->

<!-- bench:latency -->
### Every predictor on both spaces, fitting from subnets, throughput, profiling time

`python benchmarks/bench_latency.py` (x86_64, 2 cores, 2026-11-25)

#### Throughput

main figures
<!-- /bench:latency -->

{CHANGELOG}
## Changelog / earlier measurements

old figures
"""


def blocks(text):
    return re.findall(r"<!-- bench:([\w.-]+) -->", text)


def test_a_part_is_replaced_in_place_under_its_subject_with_its_headings_one_level_down():
    out = place(DOC, "latency", "Latency and memory predictors", "`cmd` (2026-12-02)\n\n### Throughput\n\nnew")
    part = out[out.index("<!-- bench:latency -->"):out.index("<!-- /bench:latency -->")]
    assert part.startswith("<!-- bench:latency -->\n### Every predictor on both spaces")
    assert "#### Throughput\n\nnew" in part and "main figures" not in out
    assert "load figures" in out and "old api figures" in out and "old figures" in out
    assert blocks(out) == ["api", "latency-load", "latency"]


def test_a_subject_of_its_own_keeps_its_level_two_title_and_body_headings():
    out = place(DOC, "api", "REST API: /predict", "`cmd` (2026-12-02)\n\n### Requests per second")
    assert "<!-- bench:api -->\n## REST API: /predict\n\n`cmd` (2026-12-02)\n\n### Requests per second\n" in out


def test_a_new_part_joins_its_subject_and_a_new_subject_goes_before_the_changelog():
    out = place(DOC, "latency-idle", "ignored", "`cmd` (2026-12-02)\n\nidle")
    assert blocks(out) == ["api", "latency-load", "latency", "latency-idle"]
    assert out.index("<!-- /bench:latency-idle -->") < out.index(CHANGELOG)
    assert "### cpu-host fidelity without a companion process" in out

    out = place(out, "mcu-c", "MCU C code", "`cmd` (2026-12-02)\n\nmcu")
    assert out.index("<!-- /bench:mcu-c -->") < out.index(CHANGELOG) and "## MCU C code" in out

    out = place(out, "accuracy-fashion-mnist-full", "Accuracy after `fashion-mnist-full`", "`cmd` (2026-12-03)")
    subject = "## Supernet subnets vs the same nets trained from scratch\n\n<!-- bench:accuracy-fashion-mnist-full -->"
    assert subject in out and "### Accuracy after `fashion-mnist-full`" in out  # a prefix part keeps its title
    assert out.index("<!-- /bench:accuracy-fashion-mnist-full -->") < out.index(CHANGELOG)


def test_a_part_goes_under_its_subject_heading_when_the_subject_has_no_part_left():
    doc = re.sub(r"<!-- bench:(latency[\w-]*) -->.*?<!-- /bench:\1 -->\n", "", DOC, flags=re.S)
    assert blocks(doc) == ["api"]
    out = place(doc, "latency", "x", "`cmd` (2026-12-02)")
    assert out.count("## Latency and memory predictors") == 1
    assert out.index("## Latency and memory predictors") < out.index("<!-- bench:latency -->") < out.index(CHANGELOG)


def test_subjects_of_keys_by_name_and_by_prefix():
    assert subject_of("latency-load")[0] == subject_of("latency")[0] == "Latency and memory predictors"
    assert subject_of("accuracy-predictor-500")[0] == "Accuracy predictor fidelity"  # the longer prefix wins
    assert subject_of("accuracy-tiny")[0] == "Supernet subnets vs the same nets trained from scratch"
    assert subject_of("search") is None and subject_of("api") is None


def test_the_contents_table_lists_every_section_with_its_date_and_follows_a_rewrite():
    out = with_contents(DOC)
    toc = out[out.index(TOC_START):out.index("<!-- /bench-toc -->")]
    assert out.index(TOC_START) < out.index("<!-- bench:api -->")
    assert "| [REST API](#rest-api) | `api` | 2026-11-25 |" in toc
    assert ("| [Latency and memory predictors](#latency-and-memory-predictors) | [cpu-host fidelity under load "
            "(5 profiling runs of tiny-mbv3)](#cpu-host-fidelity-under-load-5-profiling-runs-of-tiny-mbv3) "
            "(`latency-load`) | 2026-12-01 |") in toc
    assert "(`latency`) | 2026-11-25 |" in toc
    assert "[Changelog / earlier measurements](#changelog--earlier-measurements)" in toc
    assert with_contents(out) == out
    again = place(out, "latency", "x", "`cmd` (x86_64, 2026-12-09)\n\nnew")
    assert "(`latency`) | 2026-12-09 |" in again and again.count(TOC_START) == 1


def test_tidy_moves_a_pasted_section_under_its_subject_and_before_the_changelog():
    assert tidy(DOC) == with_contents(DOC)  # nothing out of place
    pasted = re.sub(r"<!-- bench:latency-load -->.*?<!-- /bench:latency-load -->\n", "", DOC, flags=re.S)
    pasted += ("<!-- bench:latency-load -->\n## cpu-host latency fidelity under load\n\n`cmd` (2026-12-07)\n\n"
               "### Runs\n\nnew load figures\n<!-- /bench:latency-load -->\n"
               "<!-- bench:mcu-c -->\n## MCU C code\n\n`cmd` (2026-12-06)\n\nmcu\n<!-- /bench:mcu-c -->\n")
    out = tidy(pasted)
    assert blocks(out) == ["api", "latency", "latency-load", "mcu-c"]
    assert out.rindex("<!-- /bench:") < out.index(CHANGELOG)
    assert "### cpu-host fidelity under load (5 profiling runs of tiny-mbv3)\n\n`cmd` (2026-12-07)\n\n#### Runs" in out
    assert "## MCU C code" in out and "(`latency-load`) | 2026-12-07 |" in out
    assert tidy(out) == out


def test_write_section_writes_the_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(DOC)
    monkeypatch.setattr(_report, "machine", lambda: "x86_64, 2 cores, 2026-12-05")
    write_section("api", "REST API", "new api figures", command="python benchmarks/bench_api.py", path=path)
    text = path.read_text()
    assert "`python benchmarks/bench_api.py` (x86_64, 2 cores, 2026-12-05)\n\nnew api figures" in text
    assert "| [REST API](#rest-api) | `api` | 2026-12-05 |" in text
    assert [p.name for p in tmp_path.iterdir()] == ["BENCHMARKS.md"]  # no temporary file left behind


def test_the_shipped_benchmarks_md_is_well_formed_and_its_contents_current():
    text = _report.BENCHMARKS_MD.read_text()
    opened, closed = blocks(text), re.findall(r"<!-- /bench:([\w.-]+) -->", text)
    assert opened == closed and len(set(opened)) == len(opened)
    assert tidy(text) == text, "put sections in place and rebuild the contents: python -m benchmarks._report"
    assert text.index(CHANGELOG) > text.rindex("<!-- /bench:")

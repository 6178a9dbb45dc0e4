"""The CLI's read-only views: `objectives` table and detail page (widths, columns, the math reachable)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from nas.cli import main
from nas.cli.objectives import _short_citation
from objectives import registry


@pytest.mark.parametrize("columns", ["80", "160", "400"])
def test_objectives_table_fits_the_terminal_and_defines_not_cites(columns, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", columns)
    assert main(["objectives"]) == 0
    out = capsys.readouterr().out
    width = max(100, min(200, int(columns)))
    assert max(len(line) for line in out.splitlines()) <= width
    header = out.splitlines()[0]
    assert "source" in header and ("definition" in header) == (int(columns) >= 160)
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("kappa_w "))
    row = lines[at] + " " + lines[at + 1]
    assert "Nelson 2022" in row
    # the definition column holds the docstring's summary, not the citation's title
    assert "Step-consistency" in row and "Gradient Step-Consistency and Batch-Dissonance" not in row


def test_objectives_metric_prints_its_whole_docstring(capsys):
    assert main(["objectives", "kappa_x"]) == 0
    out = capsys.readouterr().out
    assert inspect.getdoc(registry.get("kappa_x").fn) in out
    assert "citation: Nelson" in out and "paper direction: minimize" in out


@pytest.mark.parametrize("citation, short", [
    ("Lee & Ham, AZ-NAS: Assembling Zero-Cost Proxies, CVPR 2024 (cvlab-yonsei/AZ-NAS)", "Lee & Ham 2024"),
    ("Nelson, Gradient Step-Consistency and Batch-Dissonance, BYU MS thesis 2022, Def. 3.4", "Nelson 2022"),
    ("Wu, Luo, Zhang, Wang & Yang, Revisiting the Characteristics of SGN, Sec. 4", "Wu et al."),
    ("Mellor et al., NAS without Training, arXiv:2006.04647v1 (2020); Abdelfattah et al., ICLR 2021",
     "Mellor et al. 2020"),
    ("FLOPs baseline of Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021", "Abdelfattah et al. 2021"),
    ("Roy & Roy, Layer-Dependent Structure in Gradient Noise", "Roy & Roy"),
])
def test_short_citation(citation, short):
    assert _short_citation(citation) == short


@pytest.mark.integration
def test_objectives_piped_into_head_exits_quietly():
    proc = subprocess.run(f"{sys.executable} -m nas objectives | head -1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.startswith("metric")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


@pytest.mark.parametrize("space", ["resnet_cifar", "mlp_looks_linear", "vgg", "nb201"])
def test_spaces_show_their_math_and_no_missing_documents(space, capsys):
    assert main(["spaces", space]) == 0
    out = capsys.readouterr().out
    assert "DESIGN.md" not in out
    from search_spaces import get_space
    cls = type(get_space(space))
    assert inspect.getdoc(cls) in out and inspect.getdoc(cls.model_class) in out
    if space in ("resnet_cifar", "mlp_looks_linear"):  # the spaces with a CReLU choice carry its math
        assert "W_LL CReLU(x) = W relu(x) - W relu(-x) = W x" in out


def test_help_names_where_the_documentation_is(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "objectives METRIC" in out and "spaces SPACE" in out and "Troubleshooting" in out
    assert main(["spaces"]) == 0
    assert "DESIGN.md" not in capsys.readouterr().out


def test_every_command_has_a_help_page(capsys):
    from nas.cli import COMMANDS

    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
        assert f"python -m nas {name}" in capsys.readouterr().out

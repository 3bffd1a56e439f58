"""seq2seq_rdrop.reporting.decoding_tables, the decoding scripts' markdown tables: the cells of a mean over
checkpoints, the table written below its machine header, and an import that loads neither torch nor the
comparison report."""
import subprocess
import sys

from conftest import REPO

from seq2seq_rdrop.metrics import METRIC_NAMES
from seq2seq_rdrop.reporting.decoding_tables import finish_report, mean_cells


def test_mean_cells_average_each_metric_over_the_checkpoints_in_metric_order():
    runs = [{m: float(i) for i, m in enumerate(METRIC_NAMES)},
            {m: float(i) + 1.0 for i, m in enumerate(METRIC_NAMES)}]
    assert mean_cells(runs) == " | ".join(f"{i + 0.5:.2f}" for i in range(len(METRIC_NAMES)))


def test_finish_report_prints_the_table_and_writes_it_below_the_machine_header(tmp_path, capsys):
    lines = ["| setting | R-L |", "|---|---|", "| greedy | 1.00 |"]
    out = tmp_path / "table.md"
    assert finish_report(lines, str(out)) == 0
    header, table = out.read_text(encoding="utf-8").split("\n\n", 1)
    assert table == "\n".join(lines) + "\n"
    assert header.startswith("- command: `python ") and "- machine: " in header
    assert "\n".join(lines) in capsys.readouterr().out

    assert finish_report(lines, None) == 0  # printed only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_import_loads_neither_torch_nor_the_comparison_report():
    code = ("import sys, seq2seq_rdrop.reporting.decoding_tables; "
            "loaded = [m for m in ('torch', 'matplotlib', 'numpy', 'seq2seq_rdrop.reporting.comparison') "
            "if m in sys.modules]; "
            "assert not loaded, loaded; "
            "from seq2seq_rdrop.reporting import OUTPUT_NAMES, CompareError, compare; "
            "assert 'comparison.md' in OUTPUT_NAMES and callable(compare) and issubclass(CompareError, Exception)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()

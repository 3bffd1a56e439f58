"""scripts/title_form_report.py: each predictions file's rates sit beside the references' and the no-training
titles', checked against the dev file's abstracts; a file that is not the dev file's predictions is refused."""
from conftest import load_script

ABSTRACT = "本文提出一种基于Sponge结构的轻量级Hash函数,该函数在WiFi设备上运行。"
PAIRS = [("基于Sponge结构的轻量级Hash函数", ABSTRACT), ("WiFi设备上的Hash函数", ABSTRACT)]


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_predictions_file_gets_its_rates_beside_the_references_row(tmp_path, capsys):
    report = load_script("title_form_report", "scripts/title_form_report.py")
    dev = write(tmp_path, "dev.tsv", [f"{t}\t{a}" for t, a in PAIRS])
    predictions = write(tmp_path, "predictions_dev.tsv", [f"{PAIRS[0][0]}\t基于Spon的Hash函数",
                                                         f"{PAIRS[1][0]}\twififi设备"])
    assert report.main([str(dev), str(predictions)]) == 0
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ")}
    assert rows["references"][1:5] == ["100.00"] * 4 and rows["references"][-5:-1] == ["0.0%"] * 4
    ours = rows[str(predictions)]
    assert ours[-5] == "50.0%" and ours[-2] == "50.0%"  # one Latin word cut short, one repeated piece
    assert "the one-line rule" in rows and "the first 20 characters" in rows


def test_predictions_of_other_titles_are_refused_naming_the_file_and_line(tmp_path, capsys):
    report = load_script("title_form_report", "scripts/title_form_report.py")
    dev = write(tmp_path, "dev.tsv", [f"{t}\t{a}" for t, a in PAIRS])
    other = write(tmp_path, "p.tsv", [f"{PAIRS[0][0]}\tx", "别的标题\ty"])
    assert report.main([str(dev), str(other)]) == 2
    assert f"{other}:2: reference '别的标题'" in capsys.readouterr().err

"""YAML the user writes (config files, --objective files, --set values): a key given twice in one mapping
is a one-line ConfigError naming the key and both places (issue 27, item 2), and a file that is not text in
UTF-8, or UTF-16 with a byte-order mark, is one line too (item 9); UTF-16 with a BOM is read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from figkd.cli import main
from figkd.config import ConfigError, load_objective, load_yaml, parse_set


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_duplicate_key_in_a_config_file_names_the_key_and_both_lines(tmp_path):
    path = _write(tmp_path / "c.yaml", "epochs: 1\nbatch_size: 4\nepochs: 3\n")
    with pytest.raises(ConfigError, match=r"config file .*c\.yaml: key 'epochs' is given twice, on lines 1 and 3") \
            as e:
        load_yaml(path)
    assert "\n" not in str(e.value)


def test_duplicate_option_in_an_objective_file(tmp_path):
    path = _write(tmp_path / "o.yaml", "- {term: ce, weight: 1.0}\n- term: kd\n  temperature: 4\n  weight: 1\n"
                                       "  temperature: 2\n")
    with pytest.raises(ConfigError, match=r"objective file .*o\.yaml: key 'temperature' is given twice, on lines "
                                          r"3 and 5"):
        load_objective(path)


def test_duplicate_key_in_a_set_value():
    with pytest.raises(ConfigError, match=r"--set objective: key 'weight' is given twice, on line 1 \(columns 13 "
                                          r"and 24\)"):
        parse_set(["objective=[{term: kd, weight: 1, weight: 2}]"])


def test_a_merged_mapping_may_be_overridden(tmp_path):
    """YAML's merge key (``<<: *anchor``) followed by a key of the anchor is an override, not a duplicate."""
    path = _write(tmp_path / "o.yaml", "- &kd {term: kd, weight: 1.0, temperature: 4}\n"
                                       "- {<<: *kd, temperature: 2}\n")
    assert load_objective(path)[1] == {"term": "kd", "weight": 1.0, "temperature": 2}


def _bom16(text: str) -> bytes:
    return text.encode("utf-16")  # native byte order, with its byte-order mark


@pytest.mark.parametrize("data", [_bom16("epochs: 2\nobjective: kd\n"), "\ufeffepochs: 2\nobjective: kd\n".encode(),
                                  "epochs: 2\r\nobjective: kd\r\n".encode("utf-16-be").join([b"\xfe\xff", b""])],
                         ids=["utf16", "utf8-bom", "utf16-be-crlf"])
def test_a_utf16_or_utf8_file_with_a_byte_order_mark_is_read(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    assert load_yaml(path) == {"epochs": 2, "objective": "kd"}


@pytest.mark.parametrize("data, what", [
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}" + bytes(range(128, 256)), "byte 0x93 at offset 0"),
    (b"\x08\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{}}\x00\x00", "character 0x08 at offset 0"),
    ("epochs: 2\n".encode("utf-16-le"), "character 0x00 at offset 1"),  # UTF-16 without its mark
], ids=["npy", "safetensors", "utf16-no-bom"])
def test_a_binary_or_unmarked_utf16_file_is_one_line(tmp_path, data, what):
    for loader, kind in ((load_yaml, "config file"), (load_objective, "objective file")):
        path = tmp_path / "model.yaml"
        path.write_bytes(data)
        with pytest.raises(ConfigError) as e:
            loader(path)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"{kind} {path} is not a text file") and what in msg, msg
        assert "UTF-8, or UTF-16 with a byte-order mark" in msg


@pytest.mark.parametrize("flag, name, content, pattern", [
    ("--config", "c.yaml", b"epochs: 1\nepochs: 3\n", r"config file c\.yaml: key 'epochs' is given twice, on lines "
                                                       r"1 and 2; keep one"),
    ("--objective", "o.yaml", b"- {term: ce, weight: 1, weight: 2}\n", r"objective file o\.yaml: key 'weight' is given "
                                                                       r"twice"),
    ("--config", "c.yaml", b"\x80\x81 not text", r"config file c\.yaml is not a text file"),
], ids=["config-duplicate", "objective-duplicate", "config-binary"])
def test_the_command_line_says_it_on_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, flag, name, content,
                                                                  pattern):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(content)
    code = main(["train", "--model", "resnet8", "--dataset", "digits_16", "--epochs", "1", flag, name,
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(pattern, err[0]), err
    assert not (tmp_path / "run").exists()

"""A saved model scores the same through the Python API, the CLI and transformers.pipeline."""

from __future__ import annotations

import json

import pytest
import torch

from rewardsmith.cli import main
from rewardsmith.models import init_reward_model, load_reward_model, render, save_reward_model
from rewardsmith.score import Scorer

ROWS = [
    {"id": "p1", "prompt": [{"role": "user", "content": "How do I boil an egg?"}],
     "chosen": "Put it in boiling water for nine minutes.", "rejected": "No idea."},
    {"prompt": "栄養バランスの良い食事とは何ですか？", "response": "主食、主菜、副菜をそろえることです。"},
    {"messages": [{"role": "user", "content": "광화문에 어떻게 가나요?"}], "response": "지하철 5호선 광화문역에서 내리세요."},
]


def _items(row):
    if "chosen" in row:
        return [(row["prompt"], row["chosen"]), (row["prompt"], row["rejected"])]
    conv = row.get("messages") or [{"role": "user", "content": row["prompt"]}]
    return [(conv, row["response"])]


def _with_segment_ids(encoder_dir, out):
    """The tiny encoder with a tokenizer that emits token_type_ids, as BertTokenizer does."""
    import shutil

    from transformers import AutoTokenizer

    shutil.copytree(encoder_dir, out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["model_input_names"] = ["input_ids", "token_type_ids", "attention_mask"]
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    assert "token_type_ids" in AutoTokenizer.from_pretrained(out)("a", "b")
    return out


@pytest.fixture(scope="module", params=["encoder", "encoder-segments", "decoder"])
def saved(request, tiny_encoder_dir, tiny_decoder_dir, tmp_path_factory):
    base = {"encoder": tiny_encoder_dir, "decoder": tiny_decoder_dir}.get(request.param)
    if base is None:
        base = _with_segment_ids(tiny_encoder_dir, tmp_path_factory.mktemp("seg") / "base")
    rm = init_reward_model(base)
    torch.manual_seed(2)
    head = rm.model.score if request.param == "decoder" else rm.model.classifier
    with torch.no_grad():
        head.weight.normal_(0, 1.0)
    return save_reward_model(rm, tmp_path_factory.mktemp("rm") / request.param)


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    return path


def _score(output) -> float:
    return (output[0] if isinstance(output, list) else output)["score"]


def test_api_cli_and_pipeline_agree(saved, rows_file, tmp_path):
    from transformers import pipeline

    rm = load_reward_model(saved)
    items = [item for row in ROWS for item in _items(row)]
    api = Scorer(rm, precision="fp32").score(items)

    out = tmp_path / "scores.jsonl"
    assert main(["score", str(saved), str(rows_file), "-o", str(out), "--precision", "fp32"]) == 0
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in results] == [1, 2, 3] and results[0]["id"] == "p1"
    cli = [results[0]["chosen_score"], results[0]["rejected_score"], results[1]["score"], results[2]["score"]]

    pipe = pipeline("text-classification", model=str(saved), device="cpu")
    texts = [render(rm.tokenizer, rm.manifest, *item) for item in items]
    if rm.manifest.input_format == "chat_template":  # the template writes the special tokens itself
        piped = [_score(pipe(t["text"], function_to_apply="none", add_special_tokens=False)) for t in texts]
        default = [_score(pipe(t["text"], add_special_tokens=False)) for t in texts]
    else:
        piped = [_score(pipe(t, function_to_apply="none")) for t in texts]
        default = [_score(pipe(t)) for t in texts]

    assert max(abs(a - b) for a, b in zip(api, cli)) < 1e-4
    assert max(abs(a - b) for a, b in zip(api, piped)) < 1e-4
    assert max(abs(a - b) for a, b in zip(api, default)) < 1e-4  # config makes "none" the default
    assert max(abs(a) for a in api) > 1e-2 and len({round(a, 3) for a in api}) == len(api)


def test_score_resumes_and_skips_rows_already_written(saved, rows_file, tmp_path):
    out = tmp_path / "scores.jsonl"
    out.write_text('{"line": 1, "id": "p1", "chosen_score": 0.0, "rejected_score": 0.0}\n{"line": 2, "sc')
    assert main(["score", str(saved), str(rows_file), "-o", str(out), "--precision", "fp32"]) == 0
    lines = [json.loads(line)["line"] for line in out.read_text().splitlines()]
    assert lines == [1, 2, 3]
    assert main(["score", str(saved), str(rows_file), "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3


def test_a_full_disk_is_one_error_and_the_rerun_resumes(saved, rows_file, tmp_path, capsys, full_disk):
    out = tmp_path / "disk" / "scores.jsonl"
    out.parent.mkdir()
    first = '{"line": 1, "id": "p1", "chosen_score": 0.0, "rejected_score": 0.0}\n'
    out.write_text(first)
    full_disk(out.parent, free_bytes=30)  # row 2 is cut after 30 bytes
    assert main(["score", str(saved), str(rows_file), "-o", str(out), "--precision", "fp32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: -o {out}: no space left on the device") and "rerun the same command" in err
    text = out.read_text()
    assert text.startswith(first) and len(text) == len(first) + 30  # row 1 intact, row 2 cut short

    full_disk(out.parent, free_bytes=10**6)  # space freed (a new, larger disk under the same folder)
    capsys.readouterr()
    assert main(["score", str(saved), str(rows_file), "-o", str(out), "--precision", "fp32"]) == 0
    assert [json.loads(line)["line"] for line in out.read_text().splitlines()] == [1, 2, 3]


def test_compare_and_best_of_n_commands(saved, capsys):
    prompt, a, b = "How do I boil an egg?", "Nine minutes.", "No idea."
    scorer = Scorer(load_reward_model(saved), precision="fp32")
    p = scorer.compare([{"role": "user", "content": prompt}], a, b)
    assert main(["compare", str(saved), "--prompt", prompt, a, b, "--precision", "fp32"]) == 0
    assert f"P(A better than B) = {p:.4f}" in capsys.readouterr().out

    ranked = scorer.best_of_n([{"role": "user", "content": prompt}], [a, b, "Ask a chef."])
    assert main(["best-of-n", str(saved), "--prompt", prompt, a, b, "Ask a chef.", "--precision", "fp32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [f"#{i + 1}" for i, _ in ranked]


def test_bad_rows_name_the_file_and_line(saved, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[1]) + "\n" + '{"prompt": "x"}\n')
    assert main(["score", str(saved), str(bad)]) == 2
    assert f"{bad}:2: no 'response'" in capsys.readouterr().err


def test_rows_in_trl_layouts_score_as_their_plain_equivalents(saved, tmp_path):
    """TRL's layouts (text or messages, implicit prompt, prompt-completion, a chat transcript) give
    the scores of the plain rows they mean; the data layer reads the pairs, so `data` and `score` agree."""
    user = [{"role": "user", "content": "How do I boil an egg?"}]
    good, bad = "Put it in boiling water for nine minutes.", "No idea."
    rows = [
        {"prompt": "How do I boil an egg?", "chosen": good, "rejected": bad},                    # text
        {"chosen": user + [{"role": "assistant", "content": good}],                              # implicit prompt
         "rejected": user + [{"role": "assistant", "content": bad}]},
        {"prompt": user, "chosen": [{"role": "assistant", "content": good}],                     # messages answers
         "rejected": [{"role": "assistant", "content": bad}]},
        {"prompt": "How do I boil an egg?", "completion": good},                                 # prompt-completion
        {"messages": user + [{"role": "assistant", "content": bad}]},                            # a transcript
        {"messages": [{"role": "human", "content": "How do I boil an egg?"}], "response": good},  # ShareGPT role name
        {"messages": [{"role": "human", "content": "How do I boil an egg?"}, {"role": "gpt", "content": bad}]},
    ]
    path = tmp_path / "trl.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(saved), str(path), "-o", str(out), "--precision", "fp32"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    r_good, r_bad = Scorer(load_reward_model(saved), precision="fp32").score([(user, good), (user, bad)])
    assert r_good != pytest.approx(r_bad, abs=1e-3)  # the rows below could not all agree by accident
    for r in got[:3]:
        assert (r["chosen_score"], r["rejected_score"]) == pytest.approx((r_good, r_bad), abs=1e-5)
    assert [r["score"] for r in got[3:]] == pytest.approx([r_good, r_bad, r_good, r_bad], abs=1e-5)


@pytest.mark.parametrize("row, says", [
    ({"prompt": "hi", "response": 3}, "response is int, expected text"),
    ({"prompt": "hi", "chosen": "a", "rejected": 7}, "rejected is int, expected text"),
    ({"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "response": "x"},
     "prompt ends with assistant"),
    ({"prompt": [{"role": "robot", "content": "hi"}], "response": "x"}, "prompt[0].role is 'robot'"),
    ({"response": "x"}, "no 'prompt' (or 'messages') field"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "no 'response'"),
])
def test_a_malformed_row_names_its_line_and_field(saved, tmp_path, capsys, row, says):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[1]) + "\n" + json.dumps(row) + "\n")
    assert main(["score", str(saved), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: " in err and says in err, err


def test_gzipped_input_and_a_byte_order_mark_score_like_plain_utf8(saved, rows_file, tmp_path):
    import gzip

    plain = rows_file.read_bytes()
    gz, bom = tmp_path / "rows.jsonl.gz", tmp_path / "bom.jsonl"
    gz.write_bytes(gzip.compress(plain))
    bom.write_bytes(b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n"))  # as a Windows editor saves it
    outputs = []
    for source in (rows_file, gz, bom):
        out = tmp_path / f"{source.name}.scores.jsonl"
        assert main(["score", str(saved), str(source), "-o", str(out), "--precision", "fp32"]) == 0
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1] == outputs[2] and len(outputs[0].splitlines()) == len(ROWS)


def test_unreadable_input_says_what_it_is_and_how_to_fix_it(saved, tmp_path, capsys):
    korean = tmp_path / "cp949.jsonl"
    korean.write_bytes((json.dumps(ROWS[1]) + "\n").encode() +
                       json.dumps(ROWS[2], ensure_ascii=False).encode("cp949") + b"\n")
    assert main(["score", str(saved), str(korean)]) == 2
    err = capsys.readouterr().err
    assert f"{korean}:2: not UTF-8" in err and "iconv -f" in err, err

    fake = tmp_path / "rows.jsonl.gz"
    fake.write_text(json.dumps(ROWS[1]) + "\n")
    assert main(["score", str(saved), str(fake)]) == 2
    assert "not a valid gzip file" in capsys.readouterr().err

    assert main(["score", str(saved), str(korean), "-o", str(tmp_path / "out.jsonl.gz")]) == 2
    assert "name it .jsonl" in capsys.readouterr().err

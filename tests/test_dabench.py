"""The DABench benchmark: its grading on fixed answers, and one run end-to-end on the scripted model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.dabench import main as dabench_main
from benchmarks.dabench_grading import extract, grade
from jupyter_agent.testing.jupyter import agent_environment
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM

REPO = Path(__file__).resolve().parent.parent


def test_should_count_an_exact_answer_as_right():
    result = grade("The mean fare is @mean_fare[34.65].", [["mean_fare", "34.65"]])
    assert result.correct and result.right_parts == 1


def test_should_count_a_wrong_value_as_wrong():
    result = grade("@mean_fare[35.12]", [["mean_fare", "34.65"]])
    assert not result.correct and result.parts[0].given == "35.12"


def test_should_accept_the_same_number_written_otherwise_but_not_rounded_otherwise():
    label = [["mean_fare", "34.65"]]
    assert grade("@mean_fare[34.650]", label).correct
    assert grade("@mean_fare[3.465e1]", label).correct
    assert not grade("@mean_fare[34.6]", label).correct  # one decimal where two were asked
    assert not grade("@mean_fare[34.654]", label).correct  # not rounded


def test_should_count_a_missing_or_misspelt_name_as_wrong():
    label = [["mean_fare", "34.65"]]
    assert not grade("The mean fare is 34.65.", label).correct
    result = grade("@meanfare[34.65]", label)
    assert not result.correct and result.parts[0].given is None


def test_should_compare_text_answers_exactly():
    label = [["is_normal", "no"]]
    assert grade("@is_normal[no]", label).correct
    assert not grade("@is_normal[No]", label).correct
    assert not grade("@is_normal[ no]", label).correct


def test_should_find_the_answers_in_extra_text_and_keep_the_last_of_a_repeated_name():
    answer = "First try @r[0.5], then with the cleaned data:\n- @r[0.21]\n- @n[891] rows (@note[ignored])"
    assert extract(answer) == {"r": "0.21", "n": "891", "note": "ignored"}
    assert grade(answer, [["r", "0.21"], ["n", "891"]]).correct


def test_should_need_every_sub_answer_right_for_the_question():
    label = [["median", "40974.16"], ["mean", "42103.95"], ["total", "139"]]
    result = grade("@median[40974.16] @mean[42103.96] @total[139]", label)
    assert not result.correct and result.right_parts == 2
    assert [p.correct for p in result.parts] == [True, False, True]
    assert grade("@total[139.0] @mean[42103.95] @median[40974.16]", label).correct


def dataset(root: Path) -> Path:
    """A two-question DABench folder: one easy question (one name), one medium (two names)."""
    (root / "tables").mkdir(parents=True)
    (root / "tables" / "fares.csv").write_text("Fare,Age\n10.5,30\n20.5,40\n")
    questions = [
        {
            "id": 1,
            "question": "Calculate the mean fare.",
            "constraints": "Round to two decimals.",
            "format": "@mean_fare[value]",
            "file_name": "fares.csv",
            "level": "easy",
            "concepts": [],
        },
        {
            "id": 2,
            "question": "Calculate the minimum and maximum age.",
            "constraints": "Whole numbers.",
            "format": "@min_age[value] @max_age[value]",
            "file_name": "fares.csv",
            "level": "medium",
            "concepts": [],
        },
    ]
    labels = [
        {"id": 1, "common_answers": [["mean_fare", "15.50"]]},
        {"id": 2, "common_answers": [["min_age", "30"], ["max_age", "40"]]},
    ]
    (root / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (root / "labels.jsonl").write_text("".join(json.dumps(label) + "\n" for label in labels))
    return root


def answer_each_question(body: dict) -> Reply:
    """The mean fare right; the ages half wrong (the minimum is 30, not 31)."""
    asked = " ".join(str(m.get("content")) for m in body["messages"] if m["role"] == "user")
    if "mean fare" in asked:
        return Reply(text="The mean fare is @mean_fare[15.5].")
    return Reply(text="@min_age[31] and @max_age[40]")


def test_should_grade_two_questions_run_headless_and_write_their_transcripts(
    tmp_path, llm: ScriptedLLM, capsys
):
    llm.default = answer_each_question
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "dabench.py"),
            "--data",
            str(dataset(tmp_path / "dabench")),
            "--model",
            "openai/scripted",
            "--out",
            str(out),
            "--timeout",
            "120",
        ],
        env=agent_environment(tmp_path, llm.base_url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    table = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.strip()}
    assert table["easy"][1:4] == ["1", "1", "100.0%"] and table["easy"][4:7] == ["1", "1", "100.0%"]
    assert table["medium"][1:4] == ["1", "0", "0.0%"] and table["medium"][4:7] == ["2", "1", "50.0%"]
    assert table["all"][1:4] == ["2", "1", "50.0%"] and table["all"][4:7] == ["3", "2", "66.7%"]
    assert "errors 0, timeouts 0" in done.stdout

    first = json.loads((out / "1.json").read_text())
    assert first["correct"] and first["answer"] == "The mean fare is @mean_fare[15.5]."
    assert "fares.csv" in first["prompt"] and "@mean_fare[value]" in first["prompt"]
    assert first["events"][0]["type"] == "message" and first["events"][-1]["type"] == "done"
    assert first["model_calls"] == 1 and first["tokens"]["prompt"] > 0
    second = json.loads((out / "2.json").read_text())
    assert [p["correct"] for p in second["grade"]] == [False, True]
    assert "expected `30`, got `31`: False" in (out / "2.md").read_text()
    assert (out / "summary.txt").read_text().startswith("DABench, model openai/scripted")

    assert dabench_main(["--report", str(out)]) == 0  # the table again, from the transcripts alone
    again = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert again["all"] == table["all"] and again["medium"] == table["medium"]

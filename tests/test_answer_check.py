"""The check of a final answer against the answer template (``@name[value]``) its request gave."""

from __future__ import annotations

from jupyter_agent.engine.answer_check import answer_note, missing_fields, template_fields

REQUEST = 'Answer as @mean_fare[mean_fare_value] and @is_normal[yes or no], "mean_fare_value" rounded.'


def test_should_read_the_fields_and_placeholders_of_the_template():
    assert template_fields(REQUEST) == {"mean_fare": "mean_fare_value", "is_normal": "yes or no"}
    assert template_fields("no template here; x = a@b[0]; mail me at ada@example.org[at]") == {}


def test_should_find_fields_left_out_left_empty_or_given_as_their_placeholder():
    assert missing_fields(REQUEST, "@mean_fare[34.65] @is_normal[no]") == []
    assert missing_fields(REQUEST, "The mean fare is 34.65 and it is not normal.") == [
        "mean_fare",
        "is_normal",
    ]
    assert missing_fields(REQUEST, "@mean_fare[ ] @is_normal[no]") == ["mean_fare"]
    assert missing_fields(REQUEST, "@mean_fare[mean_fare_value] @is_normal[no]") == ["mean_fare"]


def test_should_say_what_is_missing_and_repeat_the_whole_template():
    note = answer_note(REQUEST, "@is_normal[no]")
    assert "does not fill in @mean_fare[...]" in note and "@mean_fare[...] @is_normal[...]" in note
    assert answer_note(REQUEST, "@mean_fare[34.65], @is_normal[no]") == ""
    assert answer_note("What is 2 + 2?", "4") == ""

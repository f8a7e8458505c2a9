from tirgym.rewards.math import extract_answer


def test_last_box_wins_and_braces_balance():
    text = r"First \boxed{3}, then \boxed{\frac{1}{\sqrt{2}}}."
    assert extract_answer(text) == r"\frac{1}{\sqrt{2}}"


def test_boxes_are_merged_only_when_asked():
    text = r"\boxed{2} and \boxed{3}"
    assert extract_answer(text) == "3"
    assert extract_answer(text, merge_boxes=True) == "2, 3"


def test_fbox_and_unbraced_box():
    assert extract_answer(r"so \fbox{8}") == "8"
    assert extract_answer(r"$\boxed 5$") == "5"


def test_answer_tag_then_phrases():
    assert extract_answer("<think>no</think><answer> 7 </answer>") == "7"
    assert extract_answer(r"<answer>\boxed{9}</answer>") == "9"
    assert extract_answer("Thus the final answer is $\\frac{1}{2}$.") == "\\frac{1}{2}"
    assert extract_answer("Final Answer: The final answer is $24$. I hope it is correct.") == "24"
    assert extract_answer("blah\nAnswer: 12") == "12"
    assert extract_answer("The answer is (D).") == "(D)"
    assert extract_answer("Natalia sold 72 clips.\n#### 72") == "72"


def test_no_answer_and_bad_input():
    assert extract_answer("I am not sure.") is None
    assert extract_answer("") is None
    assert extract_answer(None) is None  # type: ignore[arg-type]
    assert extract_answer(r"\boxed{unclosed") is None


def test_markdown_and_concluding_sentences():
    assert extract_answer("**Answer:** 42") == "42"
    assert extract_answer("Work.\n**Answer: 42**") == "42"
    assert extract_answer("The answer is **7**.") == "7"
    assert extract_answer("We expand both sides. So $n = 5$.") == "n = 5"
    assert extract_answer("Therefore, $x = \\frac{1}{2}$") == "x = \\frac{1}{2}"
    assert extract_answer("So we are done.") is None  # no math in the conclusion
    assert extract_answer("So $a$ is odd. Then we check more cases.") is None  # not the last


def test_the_last_phrase_wins_and_answers_end_at_the_sentence():
    assert extract_answer("The answer is 3. Wait, no: the answer is 4. Done") == "4"
    assert extract_answer("final answer is 12 I hope it is correct") == "12"
    assert extract_answer("#### 72  \nmore text") == "72"
    assert extract_answer("final answer is:") is None

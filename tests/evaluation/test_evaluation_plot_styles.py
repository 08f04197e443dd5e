"""Figure styles: every strategy of a figure is told apart by colour, marker or face, and families keep colours."""

from recommender.evaluation.plots import FAMILY_COLOURS, MARKERS, _darker, axis_label, family, styles

# the offline benchmark's LOO legend: 11 task-aware scores and 10 learned rows, more than the 7 markers
OFFLINE = ["oracle", "random", "size", "mean-perf",
           *[f"score:{s}" for s in ("hscore", "hscore_reg", "knn", "lfc", "linear", "logme", "parc", "leep", "nce")],
           *[f"{k}{c}" for k in ("lr", "fm") for c in ("", "+logme", "+lfc", "+parc", "+logme+lfc+parc")]]


def test_no_two_strategies_look_alike():
    style = styles(OFFLINE)
    looks = {(s["color"], s["marker"], s["face"]) for s in style.values()}
    assert len(looks) == len(OFFLINE)


def test_first_round_keeps_the_family_colour_filled_and_later_rounds_are_hollow_then_darker():
    names = [f"score:s{i}" for i in range(3 * len(MARKERS))]  # unknown scores still parse as the score family
    style = styles(names)
    base = FAMILY_COLOURS[family(names[0])]
    first, second, third = (names[i * len(MARKERS)] for i in range(3))
    assert style[first] == {"color": base, "marker": MARKERS[0], "face": base}
    assert style[second] == {"color": base, "marker": MARKERS[0], "face": "none"}
    assert style[third]["color"] == _darker(base, 0.2) != base


def test_darker_mixes_with_black():
    # closed form: each channel times (1 - share), rounded
    assert _darker("#FF8000", 0.5) == "#804000"
    assert _darker("#E69F00", 0.0) == "#E69F00"
    assert _darker("#E69F00", 1.0) == "#000000"


def test_axis_labels_capitalise_only_the_recommenders_acronyms():
    assert [axis_label(s) for s in ("lr", "fm", "lr+logme", "auto", "auto+logme")] == [
        "LR prediction (z within dataset)", "FM prediction (z within dataset)",
        "LR+logme prediction (z within dataset)", "auto prediction (z within dataset)",
        "auto+logme prediction (z within dataset)"]

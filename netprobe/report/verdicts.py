"""The report's words for what a measurement shows beside the paper's finding, and when it can show nothing.

A trained-weights comparison (lesion, loss surface) means something only for models that have learned; a
model is taken to have learned when its accuracy is at least a quarter of the way from chance to perfect
(0.325 for 10 classes), and a section says so instead of drawing a conclusion from one that has not.
"""

from __future__ import annotations

LEARNED = 0.25  # fraction of the way from chance to perfect accuracy that counts as having learned


def has_learned(accuracy: float, chance: float) -> bool:
    """Whether `accuracy` is at least LEARNED of the way from `chance` to 1."""
    return accuracy >= chance + LEARNED * (1 - chance)


def not_learned(names_accuracies, chance: float, what: str) -> str | None:
    """A sentence naming the models (name, accuracy) that have not learned, why nothing is concluded from them
    (`what`: the comparison refused), or None when all have learned."""
    weak = [(n, a) for n, a in names_accuracies if not has_learned(a, chance)]
    if not weak:
        return None
    listed = " and ".join(f"the {n} twin (accuracy {a:.3f})" for n, a in weak)
    return (f"No conclusion is drawn about {what}: {listed} {'has' if len(weak) == 1 else 'have'} not learned "
            f"(below {chance + LEARNED * (1 - chance):.3f}, a quarter of the way from chance {chance:.3f} to 1), "
            "so its figures describe an untrained net, not the paper's setting.")


def degradation_findings(final) -> list[str]:
    """The depth study's final training losses against He et al.'s Fig. 6, one sentence per variant."""
    lines = []
    for variant, rows in final.groupby("variant", sort=False):
        rows = rows.sort_values("depth")
        if len(rows) < 2:
            continue
        low, high = rows.iloc[0], rows.iloc[-1]
        deeper_worse = high.train_loss > low.train_loss
        pair = (f"{high.depth} layers end at {high.train_loss:.4f}, {low.depth} layers at {low.train_loss:.4f}")
        if variant == "plain":
            lines.append(f"Plain: {pair}. " + ("He et al.'s degradation problem is reproduced: the deeper plain net "
                                                "trains worse." if deeper_worse else
                                                "He et al.'s degradation problem does not show at this budget: the "
                                                "deeper plain net trains at least as well."))
        else:
            lines.append(f"Residual: {pair}. " + ("He et al. find the deeper ResNet at the lower training error; here "
                                                   "it is not, at this budget (README, \"depth\": the regimes tried and "
                                                   "the budget the ordering needs)." if deeper_worse else
                                                   "As He et al. find, with shortcuts the deeper net trains at least "
                                                   "as well."))
    return lines

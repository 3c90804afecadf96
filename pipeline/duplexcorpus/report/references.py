"""Published turn-taking reference values the report marks beside the corpus's own distributions.

Only values stated in the abstracts or headline findings of the cited works are used, each with
where it comes from. The papers measured other corpora with other segmentations (manual
transcripts, their own silence thresholds), so these are orientation marks, not targets: a corpus of
scripted or synthetic dialogues, or a different VAD, moves the distributions.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    key: str
    citation: str
    url: str  # empty where no address was checked


@dataclass(frozen=True)
class Reference:
    quantity: str  # what is compared: floor_transfer_offset_s, overlap_share_of_transfers
    low: float  # a single value has low == high
    high: float
    label: str  # what the mark says on the plot
    finding: str  # the finding, in words, as the page shows it
    source: Source


LEVINSON_TORREIRA_2015 = Source(
    "levinson2015",
    "Levinson, S. C. & Torreira, F. (2015). Timing in turn-taking and its implications for processing models of "
    "language. Frontiers in Psychology 6:731.",
    "https://doi.org/10.3389/fpsyg.2015.00731")
STIVERS_2009 = Source(
    "stivers2009",
    "Stivers, T. et al. (2009). Universals and cultural variation in turn-taking in conversation. PNAS 106(26), "
    "10587–10592.",
    "https://doi.org/10.1073/pnas.0903616106")
HELDNER_EDLUND_2010 = Source(
    "heldner2010",
    "Heldner, M. & Edlund, J. (2010). Pauses, gaps and overlaps in conversations. Journal of Phonetics 38(4), "
    "555–568.",
    "")
NGUYEN_2023 = Source(
    "nguyen2023",
    "Nguyen, T. A. et al. (2023). Generative Spoken Dialogue Language Modeling (dGSLM). Transactions of the ACL 11, "
    "250–266.",
    "https://doi.org/10.1162/tacl_a_00545")

REFERENCES = (
    Reference("floor_transfer_offset_s", 0.2, 0.2, "≈200 ms (Levinson & Torreira 2015)",
              "gaps between turns are short, of the order of 200 ms", LEVINSON_TORREIRA_2015),
    Reference("floor_transfer_offset_s", 0.0, 0.2, "mode 0–200 ms (Stivers et al. 2009)",
              "in ten languages the most frequent response offset lies between 0 and 200 ms", STIVERS_2009),
    Reference("overlap_share_of_transfers", 0.4, 0.4, "≈40 % (Heldner & Edlund 2010)",
              "about 40 % of between-speaker intervals are overlaps rather than gaps", HELDNER_EDLUND_2010),
)

# cited for the definitions the corpus statistics follow, with no number taken from it
DEFINITIONS = (
    (NGUYEN_2023, "IPUs, pauses, gaps and overlaps as dGSLM counts them on Fisher to compare generated with real "
                  "two-channel dialogue; its Fisher figures are not reproduced here because they could not be "
                  "checked offline when this report was written — compare with the paper's turn-taking tables."),
    (HELDNER_EDLUND_2010, "pause = silence between two IPUs of one speaker, gap = silence between IPUs of different "
                          "speakers, overlap = both speaking; floor-transfer offset negative when overlapped."),
)


def for_quantity(quantity: str) -> list[Reference]:
    return [r for r in REFERENCES if r.quantity == quantity]


def sources() -> list[Source]:
    seen: dict[str, Source] = {}
    for src in [r.source for r in REFERENCES] + [s for s, _ in DEFINITIONS]:
        seen.setdefault(src.key, src)
    return list(seen.values())

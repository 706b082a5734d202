"""The experiment's arms, named in one place.

An arm is one intermediate stage (or none) before the shared target stage: the baseline (no
intermediate stage), each single intermediate task, and the mixtures. The names are the arms'
directory names under a grid's root and the suffixes of their ``xfer_mix_<arm>`` mixtures.

Standard library only, on purpose: the report, the grid driver and scripts read these names
without paying for seqio and TensorFlow (seconds of import and log lines on every call).
"""

from __future__ import annotations

BASELINE = "baseline"
CNN = "cnn_dailymail"
# An extra single-task arm: not one of Phang et al.'s nine.
SST2 = "sst2"
# The nine intermediate tasks of Phang et al. (2020), by the name of their single-task mixture.
NLU9 = (
    "anli_plus",
    "mnli",
    "qqp",
    "squad_v1",
    "squad_v2",
    "hellaswag",
    "cosmos_qa",
    "commonsense_qa",
    "ccg",
)
# The mixture arms: the nine tasks together, and the nine plus CNN/DailyMail.
NLU9_MIXTURE = "nlu9"
ALL10 = "all10"

# Arms CNN/DailyMail is compared with directly, and the pool the "best NLU arm" is chosen from:
# the nine single tasks and their mixture (sst2, an extra, is not one of Phang et al.'s nine).
NLU_ARMS = (*NLU9, NLU9_MIXTURE)
# The grid; arms not listed in ARM_ORDER are reported after these, alphabetically.
EXPECTED_ARMS = (BASELINE, *NLU9, CNN, NLU9_MIXTURE, ALL10)
ARM_ORDER = (BASELINE, *NLU9, SST2, CNN, NLU9_MIXTURE, ALL10)


def arm_key(arm: str) -> tuple[int, str]:
    """Sort key for arms: grid order (``ARM_ORDER``) first, then unknown arms alphabetically.

    >>> sorted(["zeta", "cnn_dailymail", "alpha", "baseline", "mnli"], key=arm_key)
    ['baseline', 'mnli', 'cnn_dailymail', 'alpha', 'zeta']
    """
    return (ARM_ORDER.index(arm), arm) if arm in ARM_ORDER else (len(ARM_ORDER), arm)

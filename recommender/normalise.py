"""Normalisation within groups, shared by the encoder, the training targets and the task-agnostic baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd


def zscore_within(values: pd.Series, groups: pd.Series | np.ndarray) -> pd.Series:
    """values z-scored (population std) within each group; a group with no spread gets 0, NaN stays NaN."""
    by = values.groupby(np.asarray(groups))
    std = by.transform("std", ddof=0)
    # a group where every value is equal (or only one is known) ranks nothing above anything: centre it at 0
    return ((values - by.transform("mean")) / std).where(std > 0, 0.0).where(values.notna())


def ranking_groups(frame: pd.DataFrame) -> pd.Series:
    """The group each pair is ranked and normalised in: its dataset, or (dataset, protocol) when the table has a
    protocol column (results of two protocols on one dataset are not comparable). Labels are strings, the dataset
    alone where the protocol is missing, else ``dataset [protocol]``."""
    datasets = frame["dataset"].astype(str)
    if "protocol" not in frame.columns:
        return datasets
    protocol = frame["protocol"]
    return datasets.where(protocol.isna(), datasets + " [" + protocol.astype(str) + "]")

"""Label quality: agreement, aggregation of reviewers' answers, reviewer calibration.

Everything here is a pure computation (plain data in, plain data out, no database).

- Agreement: :func:`percent_agreement`, :func:`cohen_kappa`, :func:`fleiss_kappa`,
  :func:`krippendorff_alpha`, and :func:`measure_agreement` for long-format answers with
  a bootstrap interval over items.
- Aggregation (``fit`` / ``fit_predict`` / ``fit_predict_proba``): :class:`MajorityVote`,
  :class:`DawidSkene`, :class:`OneCoinDawidSkene`, :class:`MACE`; for numeric ratings
  :class:`MedianRating` and :class:`BiasCorrectedMean`.
- Calibration: :func:`wilson_interval`, :func:`item_wilson_interval` (outcomes that come
  in correlated groups), :func:`expected_count_interval`, :func:`replay_status` with
  :class:`CalibrationConfig`, the CUSUM trend (:func:`cusum_path`, :func:`first_alarm`)
  and :func:`reviewer_report`.

See ``docs/quality.md``.
"""

from hilt.quality.agreement import cohen_kappa, fleiss_kappa, percent_agreement
from hilt.quality.answers import Answers
from hilt.quality.bias_corrected_mean import BiasCorrectedMean
from hilt.quality.bootstrap import AgreementResult, bootstrap_interval, measure_agreement
from hilt.quality.calibration import (
    CalibrationConfig,
    ReviewerStatus,
    StatusTrace,
    expected_count_interval,
    item_wilson_interval,
    replay_status,
    wilson_interval,
)
from hilt.quality.dawid_skene import DawidSkene
from hilt.quality.krippendorff import krippendorff_alpha
from hilt.quality.mace import MACE
from hilt.quality.majority_vote import MajorityVote
from hilt.quality.median_rating import MedianRating
from hilt.quality.one_coin_dawid_skene import OneCoinDawidSkene
from hilt.quality.reviewers import ReviewerReportRow, ReviewRecord, reviewer_report
from hilt.quality.trend import CusumConfig, cusum_path, first_alarm, rolling_accuracy

__all__ = [
    "MACE",
    "AgreementResult",
    "Answers",
    "BiasCorrectedMean",
    "CalibrationConfig",
    "CusumConfig",
    "DawidSkene",
    "MajorityVote",
    "MedianRating",
    "OneCoinDawidSkene",
    "ReviewRecord",
    "ReviewerReportRow",
    "ReviewerStatus",
    "StatusTrace",
    "bootstrap_interval",
    "cohen_kappa",
    "cusum_path",
    "expected_count_interval",
    "first_alarm",
    "fleiss_kappa",
    "item_wilson_interval",
    "krippendorff_alpha",
    "measure_agreement",
    "percent_agreement",
    "replay_status",
    "reviewer_report",
    "rolling_accuracy",
    "wilson_interval",
]

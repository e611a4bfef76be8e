"""003 MRMS vocabulary shared by every layer: project and learning statuses, purposes, early stopping.

The values are the document's codes, so they go to and come from the legacy API unchanged; the router's
own reply codes are in api_bridge/routers/mrms/codes.py.
"""

from __future__ import annotations

from enum import StrEnum

TIME_FORMAT = "%Y%m%d%H%M%S"  # the document's YYYYmmddHHMMSS
WORKER_IDX = "0"  # worker index of flowbridge's single training worker (task_idx / GetLearningLogs key)


class ProjectStatus(StrEnum):
    UPLOAD_WAITING = "1"  # 업로드 대기
    UPLOADING = "2"  # 업로드 진행
    UPLOADED = "3"  # 업로드 완료
    UPLOAD_ERROR = "4"  # 업로드 에러
    ANALYSIS_REQUESTED = "5"  # 데이터 분석 요청
    ANALYZING = "6"  # 데이터 분석 중
    ANALYZED = "7"  # 데이터 분석 완료
    ANALYSIS_ERROR = "8"  # 데이터 분석 에러
    ANALYSIS_POD_DELETE = "9"  # 데이터 분석 파드 삭제 요청


class Purpose(StrEnum):
    CLASSIFICATION = "1"
    TREND = "10"  # trend analysis: regression on a numeric target


class ModelingMode(StrEnum):
    BASIC = "1"  # 기본
    RETRAIN = "2"  # 재학습


class LearnStatus(StrEnum):
    RUNNING = "5"  # 학습 진행
    DONE = "6"  # 학습 완료
    ERROR = "7"  # 학습 에러


class EarlyType(StrEnum):
    NONE = "0"
    MIN = "1"  # stop once the key's value is <= early_value
    MAX = "2"  # stop once the key's value is >= early_value
    VARIANCE = "3"  # stop once |value(step) - value(step-1)| <= early_value


class EarlyKey(StrEnum):
    ACCURACY = "accuracy"
    LOSS = "loss"
    VAL_LOSS = "val_loss"
    VAL_ACCURACY = "val_accuracy"


class TimeType(StrEnum):
    START = "start"
    END = "end"


class YesNo(StrEnum):
    YES = "Y"
    NO = "N"


class Trainer(StrEnum):
    """Who trains a learning history: flowbridge's Prefect flow or an external worker reporting back."""

    FLOWBRIDGE = "flowbridge"
    EXTERNAL = "external"


NO_MESSAGE = "-"  # the document's message for a plain status change

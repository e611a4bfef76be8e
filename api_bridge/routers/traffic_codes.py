"""Return codes of the 000 traffic-flow prediction API, exactly as its document lists them."""

from __future__ import annotations

from enum import StrEnum

API = "000"


class UploadRet(StrEnum):
    OK = "6000"
    WRONG_KEY = "6001"  # 文件上传key错误
    UNKNOWN = "6002"  # 未知错误


class StartRet(StrEnum):
    OK = "4000"  # 成功，任务开始启动
    BAD_WORK_ID = "4001"  # 没有告警文件url或url不合法
    SERVER_ERROR = "4002"  # 服务器异常
    BAD_FILE = "4003"  # 告警文件下载失败，或告警文件不符合要求
    WRONG_METHOD = "4004"  # 请求方式错误，需要POST请求


class ProgressRet(StrEnum):
    OK = "5000"  # 请求成功
    FAILED = "5001"  # 任务执行存在错误，不存在进度文件，重新上传开启任务
    WRONG_METHOD = "5002"  # 请求方式错误，需要POST请求


class DownloadRet(StrEnum):
    BAD_WORK_ID = "6001"  # workID错误
    WRONG_METHOD = "6002"  # 请求方法错误


HEALTH_MESSAGE = "心跳检测成功..."
UPLOAD_FIELD = "flow_file"
FORECAST_FILE = "forecast.csv"
BOUNDS_FILE = "forecast_bounds.csv"

"""Return codes of the 000 traffic-flow prediction API, exactly as its document lists them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

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


# --- OpenAPI: the answers and the request bodies as the document gives them ----------------------------
class HealthAnswer(BaseModel):
    success: bool
    msg: str = Field(examples=[HEALTH_MESSAGE])


class _Answer(BaseModel):
    msg: str | None = Field(None, description="On errors: what went wrong (not in the document).")


class UploadAnswer(_Answer):
    ret: UploadRet
    work_id: str | None = Field(None, description="The upload's id; pass it to get_flow.")
    file_url: str | None = Field(None, examples=["static/upload/ba5ba4e6-4264-43a9-b9bf-e390c59899fb.csv"])


class StartAnswer(_Answer):
    ret: StartRet
    work_id: str | None = Field(None, description="The run's id, for get_resu_process and get_download_resu.")
    download_url: str | None = Field(
        None, examples=["static/download/08ff0b1d-8959-4fd8-be8c-8828c8e7cca8.csv"]
    )


class ProgressAnswer(_Answer):
    ret: ProgressRet
    process: str = Field(pattern=r"^\d{1,3}%$", examples=["100%"])
    work_id: str | None = None


class DownloadAnswer(_Answer):
    ret: DownloadRet


class FileError(_Answer):
    ret: str = Field(description="6002 (upload file) or 6001 (forecast file).")


WORK_ID_DOC = "The work_id of an upload or of a run, a UUID with or without dashes."
_WORK_ID = {
    "type": "string",
    "description": WORK_ID_DOC,
    "examples": ["ba5ba4e6-4264-43a9-b9bf-e390c59899fb"],
}
_WORK_ID_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {"work_id": _WORK_ID},
    "required": ["work_id"],
}
_START_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "work_id": _WORK_ID,
        "horizon": {"type": "integer", "minimum": 1, "maximum": 100_000, "description": "Steps to forecast."},
        "interval_level": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "holiday_country": {"type": "string", "description": "ISO country of the holiday calendar."},
    },
    "required": ["work_id"],
}


def _any_body(schema: dict[str, Any]) -> dict[str, Any]:
    """Legacy clients send JSON, urlencoded or multipart; the query string works as well, so the body is
    optional."""
    content = {
        kind: {"schema": schema}
        for kind in ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
    }
    query = {"name": "work_id", "in": "query", "required": False, "schema": _WORK_ID}
    return {"parameters": [query], "requestBody": {"required": False, "content": content}}


WORK_ID_BODY = _any_body(_WORK_ID_FORM)
START_BODY = _any_body(_START_FORM)
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary"}},
                    "required": [UPLOAD_FIELD],
                }
            }
        },
    }
}
CSV_FILE = {"text/csv": {"schema": {"type": "string", "format": "binary"}}}


# OpenAPI links: the document's flow upload -> get_flow -> get_resu_process -> get_download_resu, so
# client generators and stateful fuzzers follow a work_id from answer to request.
def _link(operation_id: str, **target: Any) -> dict[str, Any]:
    return {"operationId": operation_id, **target}


_RUN_ID = {"work_id": "$response.body#/work_id"}
_CSV_OF = {"filename": "{$response.body#/work_id}.csv"}
UPLOAD_LINKS = {
    "StartForecast": _link("traffic_get_flow", requestBody=_RUN_ID),
    "UploadedFile": _link("traffic_static_upload", parameters=_CSV_OF),
}
START_LINKS = {
    "Progress": _link("traffic_get_resu_process", requestBody=_RUN_ID),
    "Download": _link("traffic_get_download_resu", requestBody=_RUN_ID),
    "ForecastFile": _link(
        "traffic_static_download", parameters={"filename": "{$response.body#/work_id}.csv"}
    ),
}
PROGRESS_LINKS = {"Download": _link("traffic_get_download_resu", requestBody=_RUN_ID)}

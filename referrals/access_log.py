"""gunicorn's access log as JSON lines: the path without its query string, and the request id.

`gunicorn.conf.py` names `AccessLogger` as gunicorn's logger class. A line carries the method,
the path (never the query string, where a search could carry a name), the status, the size, the
duration, the client address and the id the application answered with in `X-Request-ID`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gunicorn.config import Config
from gunicorn.glogging import Logger

from referrals.logs import REQUEST_ID_HEADER, json_formatter


class AccessLogger(Logger):
    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(json_formatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.cfg.accesslog:
            return
        answered = {name.lower(): value for name, value in resp.headers}
        self.access_log.info(
            "request",
            extra={
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": resp.status_code,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 1),
                "request_id": answered.get(REQUEST_ID_HEADER.lower()),
                "remote_addr": environ.get("REMOTE_ADDR"),
            },
        )

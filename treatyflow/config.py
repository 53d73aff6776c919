"""Configuration from the environment, with the embedded defaults of `make run`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "treatyflow"
    data_dir: Path = Path(".data")
    archive_dir: Path = Path(".data/archive")
    ui_port: int = 8233
    log_level: str = "INFO"
    retention_days: int = 3650

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("TREATYFLOW_DATA_DIR", ".data"))
        return cls(
            temporal_address=env.get("TEMPORAL_ADDRESS", cls.temporal_address),
            temporal_namespace=env.get("TEMPORAL_NAMESPACE", cls.temporal_namespace),
            task_queue=env.get("TREATYFLOW_TASK_QUEUE", cls.task_queue),
            data_dir=data_dir,
            archive_dir=Path(env.get("TREATYFLOW_ARCHIVE_DIR", str(data_dir / "archive"))),
            ui_port=int(env.get("TREATYFLOW_UI_PORT", cls.ui_port)),
            log_level=env.get("TREATYFLOW_LOG_LEVEL", cls.log_level).upper(),
            retention_days=int(env.get("TREATYFLOW_RETENTION_DAYS", cls.retention_days)),
        )

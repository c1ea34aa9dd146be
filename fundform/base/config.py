"""Run settings from, in order of precedence: command-line options, FUNDFORM_* environment variables, a TOML
file (``--config FILE``, or FUNDFORM_CONFIG), and the defaults below."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from fundform.base.errors import FundformError
from fundform.base.paths import default_data_dir

# how long a connection to the run warehouse waits for another process's lock: the warehouse_wait setting of the
# settings loaded last (read by fundform.outputs.warehouse.connect, which sits above this layer)
WAREHOUSE_WAIT = 60.0


class Settings(BaseSettings):
    """Everything `fundform run` can be told. Each field is also FUNDFORM_<NAME> and a key of the TOML file."""

    model_config = SettingsConfigDict(env_prefix="FUNDFORM_", extra="forbid")

    formula: str = "fundform-needs"
    data_dir: Path = default_data_dir()
    out_root: Path = Path("out")
    warehouse: Path = Path("out/fundform.duckdb")
    # unset: the formula version's own (its default level, its first effective year, its effective years)
    level: str | None = None
    start_year: str | None = None
    years: int | None = None
    price_base_year: str | None = None
    warehouse_wait: float = Field(60.0, ge=0, description="seconds to wait for another process's lock on the warehouse")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = settings_cls.model_config.get("toml_file")
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **cli: str | int | float | bool | Path | None) -> Settings:
    """Settings with CLI values (those not None) taking precedence over env, the TOML file and defaults."""
    config_file = config_file or (Path(os.environ["FUNDFORM_CONFIG"]) if os.environ.get("FUNDFORM_CONFIG") else None)
    cls: type[Settings] = Settings
    if config_file is not None:
        if not Path(config_file).is_file():
            raise FundformError(f"{config_file}: config file not found")
        from fundform.base.toml import read_toml

        read_toml(config_file, "TOML settings file")  # read first, so a broken file is named as such
        cls = type("FileSettings", (Settings,), {"model_config": {**Settings.model_config,
                                                                   "toml_file": str(config_file)}})
    try:
        given: dict[str, Any] = {k: v for k, v in cli.items() if v is not None}
        settings = cls(**given)
    except ValidationError as e:
        where = f" in {config_file} or the FUNDFORM_* environment" if config_file else " in the FUNDFORM_* environment"
        lines = [f"invalid settings{where}:"] + [
            f"  - {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise FundformError("\n".join(lines)) from None
    global WAREHOUSE_WAIT
    WAREHOUSE_WAIT = settings.warehouse_wait  # every connection to the warehouse waits this long for a lock
    return settings

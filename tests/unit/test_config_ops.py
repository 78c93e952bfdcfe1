"""config.py, the operator's keys: bandwidth, metrics, and ingest folders (after_upload)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcsync.config import BandwidthWindow, parse_config
from kcsync.errors import ConfigError

MIB = 1024 * 1024
SOURCE = Path("/etc/kcsync/config.yaml")


def config(**top: object) -> dict[str, object]:
    data: dict[str, object] = {
        "auth": {"method": "v1", "url": "http://127.0.0.1:8080/auth/v1.0", "user": "u", "key": "k"},
        "bucket": "backups",
        "folders": [{"path": "/srv/upload", "prefix": "upload"}],
        "state_dir": "/var/lib/kcsync-test",
    }
    data.update(top)
    return data


def parse(data: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_config(data, source=SOURCE, environ={})


def test_defaults_are_off() -> None:
    cfg = parse(config())
    assert cfg.bandwidth.limit == 0 and cfg.bandwidth.schedule == ()
    assert cfg.metrics.listen is None and cfg.metrics.textfile is None
    assert cfg.folders[0].after_upload == "keep"
    assert cfg.mirrors(cfg.folders[0])


def test_bandwidth_with_a_schedule() -> None:
    cfg = parse(
        config(
            bandwidth={
                "limit": "10MiB",
                "schedule": [
                    {"from": "08:00", "to": "18:00", "limit": "2MiB"},
                    {"from": "22:30", "to": "06:00", "limit": 0},
                ],
            }
        )
    )
    assert cfg.bandwidth.limit == 10 * MIB
    assert cfg.bandwidth.schedule == (
        BandwidthWindow(480, 1080, 2 * MIB),
        BandwidthWindow(1350, 360, 0),
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        pytest.param({"limit": "fast"}, "bandwidth.limit", id="limit-not-a-size"),
        pytest.param({"schedule": {"from": "8"}}, "bandwidth.schedule", id="schedule-not-list"),
        pytest.param(
            {"schedule": [{"from": "8", "to": "18:00", "limit": 1}]},
            "bandwidth.schedule[0].from",
            id="bad-time",
        ),
        pytest.param(
            {"schedule": [{"from": "08:00", "to": "25:00", "limit": 1}]},
            "bandwidth.schedule[0].to",
            id="no-such-hour",
        ),
        pytest.param(
            {"schedule": [{"from": "08:00", "to": "18:00"}]},
            "bandwidth.schedule[0].limit",
            id="window-without-limit",
        ),
        pytest.param({"rate": 1}, "bandwidth.rate", id="unknown-key"),
    ],
)
def test_bad_bandwidth_names_the_key(section: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(config(bandwidth=section))
    assert err.value.key == key


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        pytest.param("9464", ("127.0.0.1", 9464), id="bare-port-is-loopback"),
        pytest.param(":9464", ("127.0.0.1", 9464), id="empty-host-is-loopback"),
        pytest.param("0.0.0.0:9464", ("0.0.0.0", 9464), id="written-out"),
        pytest.param("[::1]:9464", ("::1", 9464), id="ipv6"),
    ],
)
def test_metrics_listen(listen: str, address: tuple[str, int]) -> None:
    assert parse(config(metrics={"listen": listen})).metrics.listen == address


@pytest.mark.parametrize(
    ("metrics", "key"),
    [
        pytest.param({"listen": "host:port"}, "metrics.listen", id="bad-port"),
        pytest.param({"listen": "127.0.0.1:70000"}, "metrics.listen", id="port-too-big"),
        pytest.param({"textfile": "kcsync.prom"}, "metrics.textfile", id="relative"),
        pytest.param({"textfile": "/var/lib/x/kcsync.txt"}, "metrics.textfile", id="not-prom"),
    ],
)
def test_bad_metrics_names_the_key(metrics: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(config(metrics=metrics))
    assert err.value.key == key


def folders(*extra: dict[str, object]) -> list[dict[str, object]]:
    return [{"path": "/srv/upload", "prefix": "upload"}, *extra]


INBOX = {"path": "/srv/inbox", "prefix": "inbox", "after_upload": "delete"}


def test_an_ingest_folder_keeps_objects_while_the_others_mirror() -> None:
    cfg = parse(config(folders=folders(INBOX)))
    upload, inbox = cfg.folders
    assert inbox.after_upload == "delete" and not cfg.mirrors(inbox)
    assert cfg.mirrors(upload)


def test_a_folder_can_choose_its_own_delete_mode() -> None:
    cfg = parse(
        config(
            delete={"mode": "keep"},
            folders=folders({"path": "/srv/b", "prefix": "b", "delete": {"mode": "mirror"}}),
        )
    )
    assert [cfg.mirrors(f) for f in cfg.folders] == [False, True]


@pytest.mark.parametrize(
    ("data", "key"),
    [
        pytest.param(
            config(folders=folders({**INBOX, "delete": {"mode": "mirror"}})),
            "folders[1].after_upload",
            id="folder-says-mirror",
        ),
        pytest.param(
            config(delete={"mode": "mirror"}, folders=folders(INBOX)),
            "folders[1].after_upload",
            id="global-mirror-written-out",
        ),
        pytest.param(
            config(folders=folders({**INBOX, "after_upload": "move"})),
            "folders[1].after_upload",
            id="unknown-value",
        ),
    ],
)
def test_ingest_and_mirror_is_an_error_naming_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(data)
    assert err.value.key == key
    if "mirror" in str(err.value):
        assert "delete.mode: keep" in str(err.value)


def test_an_explicit_keep_lets_an_ingest_folder_beside_a_global_mirror() -> None:
    cfg = parse(
        config(
            delete={"mode": "mirror"},
            folders=folders({**INBOX, "delete": {"mode": "keep"}}),
        )
    )
    assert not cfg.mirrors(cfg.folders[1]) and cfg.mirrors(cfg.folders[0])
